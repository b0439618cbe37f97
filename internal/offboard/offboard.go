// Package offboard starts scheduled offboardings when their time comes.
//
// A schedule rule (EventBridge, rate(1 minute)) invokes the offboard function, which
// starts every offboarding that is due. One polling rule was chosen over one
// EventBridge Scheduler schedule per offboarding: nothing to create, move or delete
// when a manager schedules, reschedules or cancels (so those stay single DynamoDB
// transactions), no role to pass to the scheduler, and a minute's precision is all an
// offboarding at a person's last day needs. The cost is one Query a minute.
package offboard

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"turnover/internal/turnover"
)

// Store is what starting offboardings needs of the table.
type Store interface {
	DueOffboardings(ctx context.Context, now time.Time) ([]turnover.Offboarding, error)
	ClaimOffboarding(ctx context.Context, o turnover.Offboarding, now time.Time) (bool, error)
	MarkOffboardingStarted(ctx context.Context, o turnover.Offboarding) (bool, error)
}

// Launcher starts a job; launching the same job id again never starts a second one.
type Launcher interface {
	Launch(ctx context.Context, job turnover.Job, users []string, rows []turnover.NewIdentity) (turnover.Job, error)
}

// Service starts due offboardings.
type Service struct {
	store    Store
	launcher Launcher
	log      *slog.Logger
	now      func() time.Time
}

// New returns the service.
func New(store Store, launcher Launcher, log *slog.Logger) *Service {
	return &Service{store: store, launcher: launcher, log: log, now: time.Now}
}

// Result counts what one firing started.
type Result struct {
	Started int `json:"started"`
}

// Fire starts every offboarding due at the event's time (the schedule's clock). Each
// offboarding starts exactly one job, however often or concurrently it fires: the job id
// comes from the offboarding's, a claim marks it starting first, and launching a job
// again finishes starting the same job.
func (s *Service) Fire(ctx context.Context, ev events.CloudWatchEvent) (Result, error) {
	now := ev.Time
	if now.IsZero() {
		now = s.now()
	}
	due, err := s.store.DueOffboardings(ctx, now)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var failed error
	for _, o := range due {
		started, err := s.start(ctx, o, now)
		if err != nil {
			s.log.Error("offboarding not started", "domain", o.Domain, "offboarding", o.ID, "error", err)
			failed = err
			continue
		}
		if started {
			res.Started++
			s.log.Info("offboarding started", "domain", o.Domain, "offboarding", o.ID, "job", turnover.OffboardingJobID(o.ID))
		}
	}
	if failed != nil {
		return res, fmt.Errorf("start due offboardings: %w", failed)
	}
	return res, nil
}

func (s *Service) start(ctx context.Context, o turnover.Offboarding, now time.Time) (bool, error) {
	claimed, err := s.store.ClaimOffboarding(ctx, o, now)
	if err != nil || !claimed {
		return false, err
	}
	job := turnover.Job{
		Domain: o.Domain, ID: turnover.OffboardingJobID(o.ID), Status: turnover.JobRunning, Options: o.Options,
		Total: len(o.Users), CreatedBy: o.CreatedBy, CreatedAt: now.UTC(),
	}
	if _, err := s.launcher.Launch(ctx, job, o.Users, o.Recycle); err != nil {
		return false, err
	}
	return s.store.MarkOffboardingStarted(ctx, o)
}
