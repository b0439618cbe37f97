package reset

import (
	"context"

	"turnover/internal/turnover"
)

// JobStore is what launching a job needs of the table.
type JobStore interface {
	CreateJob(ctx context.Context, j turnover.Job) error
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

// Launcher starts reset jobs: the portal's resets and scheduled offboardings alike.
type Launcher struct {
	Jobs       JobStore
	Manifests  Manifests
	Executions Executions
	// BatchSize is how many users one reset invocation handles.
	BatchSize int
}

// Launch starts a job: the job item, the new identities of recycled extensions, its
// manifest of batches in S3, then the execution named after the job. Every step can be
// repeated: launching a job whose item exists already finishes starting that job, so
// a retried launch (same job id) never starts a second execution. It returns the job
// as stored.
func (l *Launcher) Launch(ctx context.Context, job turnover.Job, users []string, rows []turnover.NewIdentity) (turnover.Job, error) {
	if err := l.Jobs.CreateJob(ctx, job); turnover.ErrorCode(err) == turnover.ECONFLICT {
		if job, err = l.Jobs.GetJob(ctx, job.Domain, job.ID); err != nil {
			return job, err
		}
	} else if err != nil {
		return job, err
	}
	if len(rows) > 0 {
		if err := l.Jobs.PutRecycleRows(ctx, job.Domain, job.ID, rows); err != nil {
			return job, err
		}
	}
	manifest, err := l.Manifests.PutManifest(ctx, job.Domain, job.ID, Batches(users, l.BatchSize))
	if err != nil {
		return job, err
	}
	return job, l.Executions.StartJob(ctx, turnover.ExecutionInput{Domain: job.Domain, JobID: job.ID, Options: job.Options, Manifest: manifest})
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
