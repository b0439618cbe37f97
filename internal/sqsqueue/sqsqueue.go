// Package sqsqueue queues mail requests on Amazon SQS. A request names ids only (domain,
// extension, purpose, scope), so nothing personal waits in the queue.
package sqsqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"turnover/internal/backoff"
	"turnover/internal/turnover"
)

// API is the part of the SQS client the queue uses.
type API interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ API = (*sqs.Client)(nil)

// Queue is one SQS queue of mail requests.
type Queue struct {
	sqs API
	url string
}

// New returns the queue at url.
func New(api API, url string) *Queue { return &Queue{sqs: api, url: url} }

// maxBatch is SendMessageBatch's limit of messages per call.
const maxBatch = 10

// maxAttempts bounds how often entries SQS did not take are sent again.
const maxAttempts = 5

// Request queues mail requests in SendMessageBatch calls of 10. Entries SQS reports as
// failed are sent again, with backoff, a few times; it fails if any is still not queued.
func (q *Queue) Request(ctx context.Context, reqs []turnover.MailRequest) error {
	for start := 0; start < len(reqs); start += maxBatch {
		if err := q.send(ctx, reqs[start:min(start+maxBatch, len(reqs))]); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) send(ctx context.Context, reqs []turnover.MailRequest) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(reqs))
	for i, r := range reqs {
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode mail request: %w", err)
		}
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
	}
	for attempt := 1; ; attempt++ {
		out, err := q.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return fmt.Errorf("queue mail: %w", err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]bool{}
		for _, f := range out.Failed {
			if f.SenderFault {
				return fmt.Errorf("queue mail: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			}
			failed[aws.ToString(f.Id)] = true
		}
		if attempt == maxAttempts {
			return fmt.Errorf("queue mail: %d requests not taken after %d attempts", len(failed), attempt)
		}
		left := entries[:0:0]
		for _, e := range entries {
			if failed[aws.ToString(e.Id)] {
				left = append(left, e)
			}
		}
		entries = left
		if err := backoff.Wait(ctx, attempt, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
