// Package sesmail sends turnover's mail through Amazon SES v2, as simple messages with
// a plain text and an HTML body rendered by the caller.
package sesmail

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// API is the part of the SES v2 client the mailer uses.
type API interface {
	SendEmail(context.Context, *sesv2.SendEmailInput, ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

var _ API = (*sesv2.Client)(nil)

// Mailer sends from one address.
type Mailer struct {
	ses  API
	from string
}

// New returns a mailer that sends from the given address.
func New(api API, from string) *Mailer { return &Mailer{ses: api, from: from} }

// Retryer is the retry policy for SES clients: throttling (TooManyRequestsException and
// the like) and service errors are retried with exponential backoff and jitter, a few
// more times than the SDK's default, since a sending quota is often met in bursts.
func Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 6
		o.MaxBackoff = 5 * time.Second
	})
}

// Send sends one message. It fails if SES does not accept it.
func (m *Mailer) Send(ctx context.Context, to, subject, text, html string) error {
	_, err := m.ses.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: &m.from,
		Destination:      &types.Destination{ToAddresses: []string{to}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: &subject, Charset: aws.String("UTF-8")},
			Body: &types.Body{
				Text: &types.Content{Data: &text, Charset: aws.String("UTF-8")},
				Html: &types.Content{Data: &html, Charset: aws.String("UTF-8")},
			},
		}},
	})
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}
