package reset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"golang.org/x/sync/errgroup"

	"turnover/internal/turnover"
)

// Store is what the engine needs of turnover's table.
type Store interface {
	// LockUsers locks users for a job and returns those it could not lock.
	LockUsers(ctx context.Context, domain, jobID string, exts []string, ttl time.Duration) (map[string]bool, error)
	// LoadUserData returns the user, all they own (with the plan a job saved on them, in
	// UserData.Saved), and the last job that reset them.
	LoadUserData(ctx context.Context, domain, ext string) (turnover.UserData, string, error)
	// GetResults returns the results the job has recorded for these users.
	GetResults(ctx context.Context, domain, jobID string, exts []string) (map[string]turnover.UserResult, error)
	// GetRecycleRowsOf returns the new identities the job gives these extensions.
	GetRecycleRowsOf(ctx context.Context, domain, jobID string, exts []string) (map[string]turnover.NewIdentity, error)
	// SavePlans saves each plan's counts on its user's profile while the plan's job holds
	// the user's lock; a lapsed lock is an error isTransient accepts.
	SavePlans(ctx context.Context, domain string, plans []turnover.SavedPlan) error
	// ApplyResets deletes what the plans select; running it twice is harmless.
	ApplyResets(ctx context.Context, plans []turnover.ResetPlan) error
	// CommitResets records how each user ended, once per job and user, and removes the
	// saved plans of the users it records or unlocks.
	CommitResets(ctx context.Context, domain, jobID string, commits []turnover.ResetCommit) (turnover.CommitOutcome, error)
}

// lockTTL is how long a job's lock on a user lasts: longer than one reset invocation
// may run, so it only lapses when a worker died holding it.
const lockTTL = 15 * time.Minute

// rounds bounds how often a batch reads and commits a user whose profile changed
// under it before the batch is left to the state machine's retry.
const rounds = 3

// Audio deletes recorded audio.
type Audio interface {
	// DeleteAudio deletes the objects under the given keys; missing ones are no error.
	DeleteAudio(ctx context.Context, keys []string) error
}

// Mail queues setup-link mail; it is sent apart from the reset, at the rate SES allows.
type Mail interface {
	// Request queues mail; a scope asking twice for a user's mail still sends one copy.
	Request(ctx context.Context, reqs []turnover.MailRequest) error
}

// Service resets the users of a job's batches.
type Service struct {
	store       Store
	audio       Audio
	mail        Mail
	log         *slog.Logger
	now         func() time.Time
	concurrency int
}

// New returns the engine. concurrency bounds the users of one batch read at once.
func New(store Store, audio Audio, mail Mail, log *slog.Logger, concurrency int) *Service {
	return &Service{store: store, audio: audio, mail: mail, log: log, now: time.Now, concurrency: max(concurrency, 1)}
}

// BatchInput is one item of the state machine's Map: a batch of a job's users.
type BatchInput struct {
	Domain  string                `json:"domain"`
	JobID   string                `json:"jobId"`
	Options turnover.ResetOptions `json:"options"`
	Batch   turnover.Batch        `json:"batch"`
}

// BatchOutput counts what this invocation recorded. A user recorded by an earlier try of
// the same batch counts in neither.
type BatchOutput struct {
	Done   int `json:"done"`
	Failed int `json:"failed"`
}

// TransientError says a batch stopped on a failure that may pass (throttling, a service
// error, a timeout). The state machine retries the batch by this name; users already
// reset are not reset again.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// ResetBatch resets the users of a batch together, in four rounds of AWS calls, each
// round's calls side by side and covering every user of the batch:
//
//  1. lock every user, read what each owns and what the job recorded already;
//  2. save each user's plan (what the reset counts) on their profile, and delete the
//     audio of every message and greeting the plans select;
//  3. delete the items the plans select;
//  4. record every result and the job's counters in one transaction, removing the saved
//     plans.
//
// The invariant: a user's items are deleted only after their audio is deleted and their
// counts are saved. So any retry, after a crash, throttling or a commit that found the
// profile changed, still finds the remaining audio through the remaining items, and
// records the counts the first try saw (the saved plan of this job) rather than what is
// left.
//
// A user's own failure is recorded as that user's result and does not fail the batch. A
// transient failure (throttling, a service error, a timeout, a lock that lapsed) returns
// a *TransientError so the state machine retries the batch; users already recorded are
// not reset again, and what was half done is finished. Any other failure (access denied,
// a request AWS refuses) is returned as it is: the state machine does not retry it, and
// the batch counts against the job's tolerance.
func (s *Service) ResetBatch(ctx context.Context, in BatchInput) (BatchOutput, error) {
	if in.Domain == "" || in.JobID == "" {
		return BatchOutput{}, fmt.Errorf("batch without domain or job id")
	}
	users := slices.Compact(slices.Sorted(slices.Values(in.Batch.Users)))
	var out BatchOutput
	var mail []turnover.MailRequest
	for round := 0; len(users) > 0; round++ {
		if round == rounds {
			return out, &TransientError{Err: fmt.Errorf("%d users changed while being reset, %d times", len(users), rounds)}
		}
		r, err := s.resetRound(ctx, in, users)
		out.Done += r.done
		out.Failed += r.failed
		mail = append(mail, r.mail...)
		if err != nil && isTransient(ctx, err) {
			s.log.Warn("batch interrupted; the state machine retries it", "domain", in.Domain, "job", in.JobID, "error", err)
			return out, &TransientError{Err: err}
		}
		if err != nil {
			// Access denied, a bad request: trying again would fail again.
			s.log.Error("batch failed", "domain", in.Domain, "job", in.JobID, "error", err)
			return out, fmt.Errorf("reset batch of job %s: %w", in.JobID, err)
		}
		users = r.stale
	}
	if len(mail) > 0 {
		// Mail waits in a queue, apart from the reset; only queueing it happens here. A
		// retried batch queues it again and the mailer still sends one copy.
		if err := s.mail.Request(ctx, mail); err != nil {
			return out, &TransientError{Err: fmt.Errorf("queue %d welcome emails: %w", len(mail), err)}
		}
	}
	return out, nil
}

// roundResult is what one round of a batch recorded.
type roundResult struct {
	done, failed int
	stale        []string
	mail         []turnover.MailRequest
}

// userState is what the first round of calls learned of one user.
type userState struct {
	data     turnover.UserData
	resetJob string
	err      error
}

func (s *Service) resetRound(ctx context.Context, in BatchInput, users []string) (roundResult, error) {
	var (
		busy    map[string]bool // users the job could not lock
		results map[string]turnover.UserResult
		rows    map[string]turnover.NewIdentity
		states  = make([]userState, len(users))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		busy, err = s.store.LockUsers(gctx, in.Domain, in.JobID, users, lockTTL)
		return err
	})
	g.Go(func() (err error) {
		results, err = s.store.GetResults(gctx, in.Domain, in.JobID, users)
		return err
	})
	if in.Options.Recycle {
		g.Go(func() (err error) {
			rows, err = s.store.GetRecycleRowsOf(gctx, in.Domain, in.JobID, users)
			return err
		})
	}
	reads, rctx := errgroup.WithContext(gctx)
	reads.SetLimit(s.concurrency)
	for i, ext := range users {
		reads.Go(func() error {
			st := &states[i]
			st.data, st.resetJob, st.err = s.store.LoadUserData(rctx, in.Domain, ext)
			if st.err != nil && isTransient(rctx, st.err) {
				return st.err
			}
			return nil
		})
	}
	g.Go(reads.Wait)
	if err := g.Wait(); err != nil {
		return roundResult{}, err
	}

	now := s.now().UTC()
	var (
		res     roundResult
		plans   []turnover.ResetPlan
		saves   []turnover.SavedPlan
		audio   []string
		commits []turnover.ResetCommit
	)
	for i, ext := range users {
		st := states[i]
		c := turnover.ResetCommit{Extension: ext, Locked: !busy[ext]}
		var row *turnover.NewIdentity
		if r, ok := rows[ext]; ok {
			row = &r
		}
		switch {
		case st.err != nil:
			c.Result = failed(ext, st.err, now)
		case results[ext].Extension != "" || st.resetJob == in.JobID:
			// Recorded before, by an earlier try of this batch: leave it as it is.
			res.mail = append(res.mail, welcome(in, row)...)
		case busy[ext]:
			c.Result = failed(ext, turnover.Errorf(turnover.ECONFLICT, "Extension %s is being reset by another job; it was left as it was.", ext), now)
		default:
			plan := Plan(st.data, in.Options)
			counts := plan.Counts(in.Options)
			if saved := st.data.Saved; saved != nil && saved.JobID == in.JobID {
				// An earlier try saved its counts and may have deleted items since: what
				// is left is deleted all the same, and the counts are the first try's.
				counts = saved.Counts
			} else {
				saves = append(saves, turnover.SavedPlan{Extension: ext, JobID: in.JobID, Counts: counts})
			}
			r := turnover.UserResult{Extension: ext, Outcome: turnover.OutcomeReset, Deleted: counts, At: now}
			if in.Options.Recycle {
				plan.Recycle, r.Outcome = row, turnover.OutcomeRecyclePending
				if row != nil {
					r.Outcome = turnover.OutcomeRecycled
				}
			}
			plans = append(plans, plan)
			audio = append(audio, plan.AudioKeys...)
			c.Plan, c.Result, c.ReadResetJob = &plan, &r, st.resetJob
		}
		commits = append(commits, c)
	}

	// The items say where the audio is and the counts are recorded only at the end: save
	// the counts and delete the audio (side by side, every user's at once) before any item
	// goes, so a retry of a half-done batch loses neither.
	g, gctx = errgroup.WithContext(ctx)
	if len(saves) > 0 {
		g.Go(func() error { return s.store.SavePlans(gctx, in.Domain, saves) })
	}
	if len(audio) > 0 {
		g.Go(func() error { return s.audio.DeleteAudio(gctx, audio) })
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	if len(plans) > 0 {
		if err := s.store.ApplyResets(ctx, plans); err != nil {
			return res, err
		}
	}
	outcome, err := s.store.CommitResets(ctx, in.Domain, in.JobID, commits)
	if err != nil {
		return res, err
	}
	recorded := make(map[string]bool, len(outcome.Recorded))
	for _, ext := range outcome.Recorded {
		recorded[ext] = true
	}
	for _, c := range commits {
		switch {
		case !recorded[c.Extension]:
		case c.Result.Outcome == turnover.OutcomeFailed:
			res.failed++
			s.log.Info("user failed", "domain", in.Domain, "job", in.JobID, "extension", c.Extension, "reason", c.Result.Error)
		default:
			res.done++
			if c.Plan != nil {
				res.mail = append(res.mail, welcome(in, c.Plan.Recycle)...)
			}
		}
	}
	res.stale = outcome.Stale
	if len(outcome.Stale) > 0 {
		s.log.Info("users changed while being reset; reading them again", "domain", in.Domain, "job", in.JobID, "users", len(outcome.Stale))
	}
	s.log.Info("batch round committed", "domain", in.Domain, "job", in.JobID, "done", res.done, "failed", res.failed, "already", len(outcome.Already))
	return res, nil
}

// failed is the result of a user whose reset failed for a reason of its own.
func failed(ext string, err error, at time.Time) *turnover.UserResult {
	return &turnover.UserResult{Extension: ext, Outcome: turnover.OutcomeFailed, Error: failureMessage(err), At: at}
}

// welcome is the welcome mail a recycled user's row asks for, if any.
func welcome(in BatchInput, row *turnover.NewIdentity) []turnover.MailRequest {
	if row == nil || !row.SendWelcomeEmail {
		return nil
	}
	return []turnover.MailRequest{{Domain: in.Domain, Extension: row.Extension, Purpose: turnover.LinkWelcome, Scope: in.JobID}}
}

// failureMessage is what a job's result says of a failed user: an application error's
// own message, or a plain one that says nothing of the internals.
func failureMessage(err error) string {
	if turnover.ErrorCode(err) != turnover.EINTERNAL {
		return turnover.ErrorMessage(err)
	}
	return "The reset of this extension stopped on an error. Retry the job's failed users."
}

// isTransient reports whether err may pass if the work is tried again.
func isTransient(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}
