package reset

import (
	"context"
	"fmt"
	"log/slog"

	"turnover/internal/turnover"
)

// Jobs is what closing a job needs of turnover's table.
type Jobs interface {
	// FinishJob sets a job's final status from its counters and returns the job.
	FinishJob(ctx context.Context, domain, jobID string, mapFailed bool) (turnover.Job, error)
	// MarkEventPublished records that the job's completion was announced.
	MarkEventPublished(ctx context.Context, domain, jobID string) error
}

// Events announces finished jobs.
type Events interface {
	JobCompleted(ctx context.Context, j turnover.Job) error
}

// Finalizer closes jobs once the state machine has run all their batches.
type Finalizer struct {
	jobs   Jobs
	events Events
	log    *slog.Logger
}

// NewFinalizer returns a finalizer that announces finished jobs on events.
func NewFinalizer(jobs Jobs, events Events, log *slog.Logger) *Finalizer {
	return &Finalizer{jobs: jobs, events: events, log: log}
}

// FinalizeInput names the job to close. MapFailed says the state machine gave up on some
// of its batches.
type FinalizeInput struct {
	Domain    string `json:"domain"`
	JobID     string `json:"jobId"`
	MapFailed bool   `json:"mapFailed"`
}

// FinalizeOutput is the job's final status.
type FinalizeOutput struct {
	Status turnover.JobStatus `json:"status"`
}

// Finalize sets the job's final status from its counters in the table (never from the
// Map's output, which stays empty whatever the job's size) and announces the job, at
// least once: a retried finalize announces it again only if the first could not record
// that it had.
func (f *Finalizer) Finalize(ctx context.Context, in FinalizeInput) (FinalizeOutput, error) {
	job, err := f.jobs.FinishJob(ctx, in.Domain, in.JobID, in.MapFailed)
	if err == nil && !job.EventPublished {
		if err = f.events.JobCompleted(ctx, job); err == nil {
			err = f.jobs.MarkEventPublished(ctx, in.Domain, in.JobID)
		}
	}
	if err != nil {
		if isTransient(ctx, err) {
			return FinalizeOutput{}, &TransientError{Err: err}
		}
		return FinalizeOutput{}, fmt.Errorf("finalize job %s: %w", in.JobID, err)
	}
	f.log.Info("job finished", "domain", in.Domain, "job", in.JobID, "status", job.Status,
		"total", job.Total, "done", job.Done, "failed", job.Failed)
	return FinalizeOutput{Status: job.Status}, nil
}
