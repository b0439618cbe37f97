package reset

import (
	"context"
	"errors"

	"turnover/internal/turnover"
)

// JobStore is what launching a job needs of the table.
type JobStore interface {
	// CreateJob records a new job, its request hash and manifest included; ECONFLICT
	// if the job exists.
	CreateJob(ctx context.Context, j turnover.Job) error
	// GetJob returns a job as it was recorded; ENOTFOUND if there is no such job.
	GetJob(ctx context.Context, domain, jobID string) (turnover.Job, error)
	PutRecycleRows(ctx context.Context, domain, jobID string, rows []turnover.NewIdentity) error
}

// Manifests stores a job's users in batches for the state machine to read.
type Manifests interface {
	PutManifest(ctx context.Context, domain, jobID string, batches []turnover.Batch) (turnover.ManifestLocation, error)
}

// Executions starts a job's execution; starting one twice is a no-op.
type Executions interface {
	StartJob(ctx context.Context, in turnover.ExecutionInput) error
}

// ErrOtherRequest is returned by Launch for a job id that an earlier, different
// request took: the job is left as it is.
var ErrOtherRequest = errors.New("the job was created by a different request")

// Launcher starts reset jobs: the portal's resets and scheduled offboardings alike.
type Launcher struct {
	Jobs       JobStore
	Manifests  Manifests
	Executions Executions
	// BatchSize is how many users one reset invocation handles.
	BatchSize int
}

// Launch starts a job for the request whose hash is job.RequestHash: the new
// identities of recycled extensions and its manifest of batches in S3, then the job
// item, then the execution named after the job. The job item is written last but one
// and only if it does not exist, so the rows and manifest of an existing job are never
// overwritten.
//
// A job that exists already is never changed. If the same request created it (an
// earlier try that failed before it could answer, or a key sent again after its
// idempotency record expired), Launch finishes starting it, starting its execution if
// it is still running (a no-op when the execution exists), and returns it as stored.
// If another request created it, it returns ErrOtherRequest.
func (l *Launcher) Launch(ctx context.Context, job turnover.Job, users []string, rows []turnover.NewIdentity) (turnover.Job, error) {
	existing, err := l.Jobs.GetJob(ctx, job.Domain, job.ID)
	switch {
	case err == nil:
		return l.resume(ctx, existing, job.RequestHash)
	case turnover.ErrorCode(err) != turnover.ENOTFOUND:
		return job, err
	}
	if len(rows) > 0 {
		if err := l.Jobs.PutRecycleRows(ctx, job.Domain, job.ID, rows); err != nil {
			return job, err
		}
	}
	if job.Manifest, err = l.Manifests.PutManifest(ctx, job.Domain, job.ID, Batches(users, l.BatchSize)); err != nil {
		return job, err
	}
	if err := l.Jobs.CreateJob(ctx, job); turnover.ErrorCode(err) == turnover.ECONFLICT {
		// Another launch of the same job id won the race; callers claim their
		// request first (an Idempotency-Key, an offboarding), so it was this request.
		existing, err := l.Jobs.GetJob(ctx, job.Domain, job.ID)
		if err != nil {
			return job, err
		}
		return l.resume(ctx, existing, job.RequestHash)
	} else if err != nil {
		return job, err
	}
	return job, l.start(ctx, job)
}

// resume finishes starting a job that exists already, writing nothing.
func (l *Launcher) resume(ctx context.Context, job turnover.Job, requestHash string) (turnover.Job, error) {
	if job.RequestHash != requestHash {
		return job, ErrOtherRequest
	}
	if job.Status != turnover.JobRunning || job.Manifest == (turnover.ManifestLocation{}) {
		// Finished, so its execution ran; or created before jobs kept their manifest's
		// location, which cannot be started again without writing its manifest.
		return job, nil
	}
	return job, l.start(ctx, job)
}

func (l *Launcher) start(ctx context.Context, job turnover.Job) error {
	return l.Executions.StartJob(ctx, turnover.ExecutionInput{Domain: job.Domain, JobID: job.ID, Options: job.Options, Manifest: job.Manifest})
}

// Batches splits users into a manifest's batches of size n.
func Batches(users []string, n int) []turnover.Batch {
	n = max(n, 1)
	out := make([]turnover.Batch, 0, (len(users)+n-1)/n)
	for start := 0; start < len(users); start += n {
		out = append(out, turnover.Batch{Users: users[start:min(start+n, len(users))]})
	}
	return out
}
