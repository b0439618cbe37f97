package turnover

import "time"

// ResetOptions are what the office manager picked to wipe. The always-applied part of a
// reset (name, email, password, voicemail PIN, soft phones, directory entry) happens
// whatever they say.
type ResetOptions struct {
	DeleteVoicemailMessages  bool `json:"deleteVoicemailMessages"`
	DeleteVoicemailGreetings bool `json:"deleteVoicemailGreetings"`
	DeleteAnsweringRules     bool `json:"deleteAnsweringRules"`
	DeleteCustomContacts     bool `json:"deleteCustomContacts"`
	UnassignPhoneNumbers     bool `json:"unassignPhoneNumbers"`
	RemoveDeviceLines        bool `json:"removeDeviceLines"`
	Recycle                  bool `json:"recycle"`
}

// JobStatus is where a reset job stands.
type JobStatus string

const (
	JobRunning         JobStatus = "RUNNING"
	JobSucceeded       JobStatus = "SUCCEEDED"
	JobPartiallyFailed JobStatus = "PARTIALLY_FAILED"
	JobFailed          JobStatus = "FAILED"
)

// Job is one reset request: its users run through the state machine in batches.
// Done counts users reset, Failed users whose reset failed.
type Job struct {
	Domain     string
	ID         string
	Status     JobStatus
	Options    ResetOptions
	Total      int
	Done       int
	Failed     int
	CreatedBy  string
	CreatedAt  time.Time
	FinishedAt time.Time
	// EventPublished says the job's completion has been announced.
	EventPublished bool
	// RequestHash identifies the request that created the job, so that a job id met
	// again (a key reused after its idempotency record expired) is told apart from a
	// retry of that request; empty for a job no request hash came with.
	RequestHash string
	// Manifest is where the job's manifest is, so a retried launch can start the job's
	// execution without writing the manifest again.
	Manifest ManifestLocation
}

// Percent is how much of the job has run, from 0 to 100.
func (j Job) Percent() int {
	if j.Total == 0 {
		return 100
	}
	return (j.Done + j.Failed) * 100 / j.Total
}

// Outcome is how one user's reset ended.
type Outcome string

const (
	// OutcomeReset: reset done.
	OutcomeReset Outcome = "reset"
	// OutcomeRecycled: reset done and the extension took its new identity.
	OutcomeRecycled Outcome = "recycled"
	// OutcomeRecyclePending: reset done; the extension waits for its new identity.
	OutcomeRecyclePending Outcome = "recycle_pending"
	OutcomeFailed         Outcome = "failed"
	// OutcomePending: the job has not reached the user yet.
	OutcomePending Outcome = "pending"
)

// NewIdentity is who takes a recycled extension over.
type NewIdentity struct {
	Extension        string
	FirstName        string
	LastName         string
	Email            string
	Department       string
	SendWelcomeEmail bool
}

// UserResult is the record of one user's reset within a job. Deleted counts what went,
// by kind ("softPhones", "directoryEntries", "voicemailMessages", …). Error is a plain
// message safe to show; it never holds personal data.
type UserResult struct {
	Extension string
	Outcome   Outcome
	Deleted   map[string]int
	Error     string
	At        time.Time
}

// ManifestLocation is where a job's manifest of batches lives in S3.
type ManifestLocation struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
}

// Batch is one item of a job's manifest: the users one reset invocation works through.
type Batch struct {
	Users []string `json:"users"`
}

// ExecutionInput is the state machine's input: ids only, never people.
type ExecutionInput struct {
	Domain   string           `json:"domain"`
	JobID    string           `json:"jobId"`
	Options  ResetOptions     `json:"options"`
	Manifest ManifestLocation `json:"manifest"`
}

// UserFilter narrows a listing of a domain's users. Cursor continues a listing where
// the previous page stopped; it is opaque to callers.
type UserFilter struct {
	Status     Status
	Department string
	Scope      Scope
	// Query matches a part of the name or extension, whatever the case.
	Query  string
	Limit  int
	Cursor string
}

// ResetPlan is what one user's reset will change: worked out from the user's data and
// the job's options before anything is touched, so it can be shown (preview) and
// applied the same way.
type ResetPlan struct {
	Domain    string
	Extension string
	// Remove are the user's items that go: soft phones always, the rest by option.
	Voicemail []VoicemailMessage
	Greetings []Greeting
	Rules     []AnsweringRule
	Contacts  []Contact
	Devices   []Device
	// Lines are desk phones that lose this user's line but stay in inventory.
	Lines []Device
	// Numbers are DIDs routed to the user that become available.
	Numbers []string
	// DefaultRule, when set, is put back after the user's rules are deleted.
	DefaultRule *AnsweringRule
	// Recycle, when set, is the identity the extension takes after the reset.
	Recycle *NewIdentity
	// Directory is the entry the user leaves the directory by, if they have a name.
	Directory *DirectoryEntry
	// AudioKeys are the S3 objects of deleted messages and greetings.
	AudioKeys []string
}

// Counts says how much the plan deletes for each selected option, keyed as the API
// names them (the keys of a preview's willDelete and of a result's deleted). A user's
// device lines are every phone they lose: desk phone lines, mobile-app and soft phones.
func (p ResetPlan) Counts(opts ResetOptions) map[string]int {
	c := map[string]int{}
	if opts.DeleteVoicemailMessages {
		c["voicemailMessages"] = len(p.Voicemail)
	}
	if opts.DeleteVoicemailGreetings {
		c["voicemailGreetings"] = len(p.Greetings)
	}
	if opts.DeleteAnsweringRules {
		c["answeringRules"] = len(p.Rules)
	}
	if opts.DeleteCustomContacts {
		c["customContacts"] = len(p.Contacts)
	}
	if opts.UnassignPhoneNumbers {
		c["phoneNumbers"] = len(p.Numbers)
	}
	if opts.RemoveDeviceLines {
		c["deviceLines"] = len(p.Lines) + len(p.Devices)
	}
	return c
}

// AlwaysRemoved names what every reset removes, whatever the options.
var AlwaysRemoved = []string{"name", "email", "password", "voicemailPin", "softPhones"}

// FinalStatus is how a job ends, from its counters: SUCCEEDED when every user was reset,
// FAILED when none was, PARTIALLY_FAILED in between. mapFailed says the state machine
// gave up on some batches, so users may not have been reached at all.
func FinalStatus(total, done, failed int, mapFailed bool) JobStatus {
	switch {
	case done == 0 && total > 0:
		return JobFailed
	case !mapFailed && failed == 0 && done >= total:
		return JobSucceeded
	default:
		return JobPartiallyFailed
	}
}

// IdempotencyRecord is what a domain's Idempotency-Key remembers: a hash of the request
// that first came with it and, once Complete, the response that request got.
type IdempotencyRecord struct {
	RequestHash string
	Complete    bool
	Status      int
	Body        []byte
}

// LinkPurpose says what a setup link is for.
type LinkPurpose string

const (
	// LinkWelcome finishes a new person's setup: password and voicemail PIN.
	LinkWelcome LinkPurpose = "welcome"
	// LinkRecovery sets a new password after a forced password reset.
	LinkRecovery LinkPurpose = "recovery"
)

// MailRequest asks for a setup link to be mailed to the person on file for an
// extension. It names ids only, so it can wait in a queue without personal data. Scope
// (a job or request id) makes it once: however often a scope asks for the same user's
// mail, one copy goes.
type MailRequest struct {
	Domain    string      `json:"domain"`
	Extension string      `json:"extension"`
	Purpose   LinkPurpose `json:"purpose"`
	Scope     string      `json:"scope"`
}

// SetupLink is a user's live setup link as stored: the hash of its token, never the
// token itself.
type SetupLink struct {
	TokenHash  string
	Purpose    LinkPurpose
	IssuedAt   time.Time
	ValidUntil time.Time
}

// SavedPlan is what a job saved on a user's profile before deleting anything of theirs:
// the counts of what it would delete, as its first try saw them. A later try of the same
// job finds part of the user gone already, so it records these counts rather than what
// is left.
type SavedPlan struct {
	Extension string
	JobID     string
	Counts    map[string]int
}

// ResetCommit is how one user's part of a job ends. A user reset carries the plan that
// was carried out and what the reset read of the profile (ReadResetJob and the plan's
// Directory names): the commit holds only if the profile still says so, which catches a
// read made just before another job or a recycle changed the user. A failed user
// carries only its result. Locked says the job holds the user's lock, which the commit
// releases; a commit without a result only releases the lock.
type ResetCommit struct {
	Extension    string
	Result       *UserResult
	Plan         *ResetPlan
	ReadResetJob string
	Locked       bool
}

// CommitOutcome says how CommitResets left each user.
type CommitOutcome struct {
	// Recorded are the users whose results this commit wrote and counted.
	Recorded []string
	// Already are users whose result the job had recorded before; nothing was written.
	Already []string
	// Stale are users whose profile changed since the reset read it; nothing was written
	// for them and they keep the lock, so the reset can read and try them again.
	Stale []string
}
