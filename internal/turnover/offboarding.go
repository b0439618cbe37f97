package turnover

import "time"

// OffboardingStatus is where a scheduled offboarding stands.
type OffboardingStatus string

const (
	OffboardingScheduled OffboardingStatus = "scheduled"
	// OffboardingStarting: the schedule claimed it and is starting its job.
	OffboardingStarting  OffboardingStatus = "starting"
	OffboardingStarted   OffboardingStatus = "started"
	OffboardingCancelled OffboardingStatus = "cancelled"
	OffboardingSucceeded OffboardingStatus = "succeeded"
	OffboardingFailed    OffboardingStatus = "failed"
)

// Offboarding is a reset (and recycle) of some users at a chosen time. It starts exactly
// one job, whose id is derived from the offboarding's.
type Offboarding struct {
	Domain    string
	ID        string
	Status    OffboardingStatus
	At        time.Time
	Users     []string
	Options   ResetOptions
	Recycle   []NewIdentity
	CreatedBy string
	CreatedAt time.Time
	JobID     string
}

// OffboardingJobID is the id of the job an offboarding starts.
func OffboardingJobID(offboardingID string) string { return "off-" + offboardingID }
