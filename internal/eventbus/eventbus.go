// Package eventbus tells other systems about turnover's jobs through Amazon
// EventBridge. Events carry ids and counts only, never people.
package eventbus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"turnover/internal/turnover"
)

// Source and DetailTypeJobCompleted name turnover's events on the bus.
const (
	Source                 = "turnover"
	DetailTypeJobCompleted = "ResetJobCompleted"
)

// API is the part of the EventBridge client the publisher uses.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ API = (*eventbridge.Client)(nil)

// Publisher puts turnover's events on one event bus.
type Publisher struct {
	api API
	bus string
}

// New returns a publisher to the named bus.
func New(api API, bus string) *Publisher { return &Publisher{api: api, bus: bus} }

// JobCompletedDetail is the detail of a ResetJobCompleted event.
type JobCompletedDetail struct {
	Domain string `json:"domain"`
	JobID  string `json:"jobId"`
	Status string `json:"status"`
	Total  int    `json:"total"`
	Done   int    `json:"done"`
	Failed int    `json:"failed"`
}

// JobCompleted announces a finished job. It fails if EventBridge did not take the event.
func (p *Publisher) JobCompleted(ctx context.Context, j turnover.Job) error {
	detail, err := json.Marshal(JobCompletedDetail{Domain: j.Domain, JobID: j.ID, Status: string(j.Status), Total: j.Total, Done: j.Done, Failed: j.Failed})
	if err != nil {
		return fmt.Errorf("encode event of job %s: %w", j.ID, err)
	}
	out, err := p.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: &p.bus, Source: aws.String(Source), DetailType: aws.String(DetailTypeJobCompleted),
		Detail: aws.String(string(detail)),
	}}})
	if err != nil {
		return fmt.Errorf("publish event of job %s: %w", j.ID, err)
	}
	if out.FailedEntryCount > 0 {
		e := out.Entries[0]
		return fmt.Errorf("publish event of job %s: %s: %s", j.ID, aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
	}
	return nil
}
