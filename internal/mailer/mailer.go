// Package mailer sends queued setup-link mail at the rate SES allows. Resets and API
// calls only queue requests (ids, no personal data); the mailer takes them from the
// queue, paces them at the account's sending rate and leaves what failed for the queue
// to deliver again, so mail never slows or fails a reset.
package mailer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"turnover/internal/turnover"
)

// Deliverer mails one requested link.
type Deliverer interface {
	// Deliver mails the link; a scope that mailed the user already sends nothing. It
	// reports true with an error when the mail went but could not be recorded.
	Deliver(ctx context.Context, req turnover.MailRequest) (bool, error)
}

// Mailer sends a queue's mail requests.
type Mailer struct {
	deliver Deliverer
	limiter *rate.Limiter
	log     *slog.Logger
}

// New returns a mailer that sends at most perSecond emails a second, a fraction
// included: each of several mailers running at once sends its share of the account's
// rate.
func New(d Deliverer, perSecond float64, log *slog.Logger) *Mailer {
	return &Mailer{deliver: d, limiter: rate.NewLimiter(rate.Limit(perSecond), 1), log: log}
}

// Handle sends the requests of one batch of queue messages, paced. It reports the
// messages to deliver again: those whose mail failed in a way that may pass (throttling,
// a service error, another delivery of the same mail under way) and those it had no
// time left for; never one whose mail went. A request that can never be sent
// (the user is gone or has no email on file, or the message is not a request) is logged
// and dropped.
func (m *Mailer) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, msg := range ev.Records {
		var req turnover.MailRequest
		if err := json.Unmarshal([]byte(msg.Body), &req); err != nil || req.Domain == "" || req.Extension == "" || req.Scope == "" {
			m.log.Error("dropped a message that is not a mail request", "messageId", msg.MessageId)
			continue
		}
		log := m.log.With("domain", req.Domain, "extension", req.Extension, "purpose", req.Purpose, "messageId", msg.MessageId)
		if err := m.limiter.Wait(ctx); err != nil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
			continue
		}
		sent, err := m.deliver.Deliver(ctx, req)
		switch {
		case err == nil:
			log.Info("mail handled", "sent", sent)
		case sent:
			// The mail went; only recording that failed. Another try would mail a second
			// copy, whose new link would replace the one just sent.
			log.Warn("mail sent, but not recorded as sent", "error", safe(err))
		case turnover.ErrorCode(err) != turnover.EINTERNAL:
			log.Warn("mail dropped", "reason", turnover.ErrorMessage(err))
		default:
			log.Warn("mail failed; the queue delivers it again", "error", safe(err))
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return resp, nil
}

// safe is what the log may say of a failed send: an AWS error's code only, as SES puts
// the recipient's address in some of its messages.
func safe(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}
