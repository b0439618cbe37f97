package reset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"golang.org/x/sync/errgroup"

	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// Store is what the engine needs of turnover's table.
type Store interface {
	// AcquireLock locks a user for a job; ECONFLICT while another job holds the lock.
	AcquireLock(ctx context.Context, domain, ext, jobID string, ttl time.Duration) error
	// ReleaseLock releases a job's lock on a user.
	ReleaseLock(ctx context.Context, domain, ext, jobID string) error
	// LoadUserData returns the user, all they own, and the last job that reset them.
	LoadUserData(ctx context.Context, domain, ext string) (turnover.UserData, string, error)
	// GetRecycleRow returns the new identity a job gives an extension, or nil.
	GetRecycleRow(ctx context.Context, domain, jobID, ext string) (*turnover.NewIdentity, error)
	// DeleteUserItems deletes what a plan selects; running it twice is harmless.
	DeleteUserItems(ctx context.Context, plan turnover.ResetPlan) error
	// CommitReset finishes a reset and records its result, once per job and user.
	CommitReset(ctx context.Context, jobID string, plan turnover.ResetPlan, res turnover.UserResult) (bool, error)
	// RecordFailure records a failed user, once per job and user.
	RecordFailure(ctx context.Context, domain, jobID string, res turnover.UserResult) (bool, error)
}

// lockTTL is how long a job's lock on a user lasts: longer than one reset invocation
// may run, so it only lapses when a worker died holding it.
const lockTTL = 15 * time.Minute

// Audio deletes recorded audio.
type Audio interface {
	// DeleteAudio deletes the objects under the given keys; missing ones are no error.
	DeleteAudio(ctx context.Context, keys []string) error
}

// Invites mails setup links to the new people of recycled extensions.
type Invites interface {
	// Invite mails a new link; once per scope and extension, however often it is asked.
	Invite(ctx context.Context, inv setup.Invitation) (bool, error)
}

// Service resets the users of a job's batches.
type Service struct {
	store       Store
	audio       Audio
	invites     Invites
	log         *slog.Logger
	now         func() time.Time
	concurrency int
}

// New returns the engine. concurrency bounds the users of one batch reset at once.
func New(store Store, audio Audio, invites Invites, log *slog.Logger, concurrency int) *Service {
	return &Service{store: store, audio: audio, invites: invites, log: log, now: time.Now, concurrency: max(concurrency, 1)}
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

// ResetBatch resets each user of a batch, a few at a time. A user's own failure is
// recorded as that user's result and does not fail the batch; a transient failure is
// returned as a *TransientError once the other users are through, so a retry finishes
// the batch.
func (s *Service) ResetBatch(ctx context.Context, in BatchInput) (BatchOutput, error) {
	if in.Domain == "" || in.JobID == "" {
		return BatchOutput{}, fmt.Errorf("batch without domain or job id")
	}
	outcomes := make([]outcome, len(in.Batch.Users))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	for i, ext := range in.Batch.Users {
		g.Go(func() error {
			outcomes[i] = s.resetUser(gctx, in, ext)
			return nil
		})
	}
	_ = g.Wait()
	var (
		out       BatchOutput
		transient error
	)
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			transient = errors.Join(transient, o.err)
		case o.recorded && o.failed:
			out.Failed++
		case o.recorded:
			out.Done++
		}
	}
	if transient != nil {
		return out, &TransientError{Err: transient}
	}
	return out, nil
}

type outcome struct {
	recorded bool
	failed   bool
	err      error
}

func (s *Service) resetUser(ctx context.Context, in BatchInput, ext string) outcome {
	log := s.log.With("domain", in.Domain, "job", in.JobID, "extension", ext)
	var row *turnover.NewIdentity // the job's new identity for the extension, if any
	err := s.store.AcquireLock(ctx, in.Domain, ext, in.JobID, lockTTL)
	if err == nil && in.Options.Recycle {
		row, err = s.store.GetRecycleRow(ctx, in.Domain, in.JobID, ext)
	}
	if err == nil {
		var recorded, already bool
		recorded, already, err = s.resetLocked(ctx, in, ext, row)
		if err == nil {
			log.Info("user reset", "recorded", recorded, "already", already)
			s.welcome(ctx, in, row, log)
			return outcome{recorded: recorded}
		}
	}
	if isTransient(ctx, err) {
		log.Warn("user reset interrupted; the batch will be retried", "error", err)
		return outcome{err: fmt.Errorf("reset %s: %w", ext, err)}
	}
	log.Error("user reset failed", "error", err)
	res := turnover.UserResult{Extension: ext, Outcome: turnover.OutcomeFailed, Error: failureMessage(err), At: s.now().UTC()}
	recorded, rerr := s.store.RecordFailure(ctx, in.Domain, in.JobID, res)
	if rerr == nil {
		rerr = s.store.ReleaseLock(ctx, in.Domain, ext, in.JobID)
	}
	if rerr != nil {
		return outcome{err: fmt.Errorf("record failure of %s: %w", ext, rerr)}
	}
	return outcome{recorded: recorded, failed: true}
}

// resetLocked resets a user the job holds the lock on. A user this job has reset
// already (a retried batch) is left as it is.
func (s *Service) resetLocked(ctx context.Context, in BatchInput, ext string, row *turnover.NewIdentity) (recorded, already bool, err error) {
	data, resetJob, err := s.store.LoadUserData(ctx, in.Domain, ext)
	if err != nil {
		return false, false, err
	}
	if resetJob == in.JobID {
		return false, true, s.store.ReleaseLock(ctx, in.Domain, ext, in.JobID)
	}
	plan := Plan(data, in.Options)
	res := turnover.UserResult{Extension: ext, Outcome: turnover.OutcomeReset, Deleted: plan.Counts(in.Options)}
	if in.Options.Recycle {
		plan.Recycle, res.Outcome = row, turnover.OutcomeRecyclePending
		if row != nil {
			res.Outcome = turnover.OutcomeRecycled
		}
	}
	// Audio and items are independent: delete them side by side.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.audio.DeleteAudio(gctx, plan.AudioKeys) })
	g.Go(func() error { return s.store.DeleteUserItems(gctx, plan) })
	if err := g.Wait(); err != nil {
		return false, false, err
	}
	res.At = s.now().UTC()
	if recorded, err = s.store.CommitReset(ctx, in.JobID, plan, res); err == nil && !recorded {
		err = s.store.ReleaseLock(ctx, in.Domain, ext, in.JobID) // recorded before: the commit took nothing
	}
	return recorded, false, err
}

// welcome mails the setup link to the new person of a recycled extension, if the job's
// recycle row asks for it. A mail that cannot go is logged and does not fail the reset;
// a retried batch tries it again, and never sends a second copy.
func (s *Service) welcome(ctx context.Context, in BatchInput, row *turnover.NewIdentity, log *slog.Logger) {
	if row == nil || !row.SendWelcomeEmail {
		return
	}
	_, err := s.invites.Invite(ctx, setup.Invitation{
		Domain: in.Domain, Extension: row.Extension, Email: row.Email, FirstName: row.FirstName,
		Purpose: turnover.LinkWelcome, Scope: in.JobID,
	})
	if err != nil {
		log.Warn("welcome email not sent", "error", err)
	}
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
