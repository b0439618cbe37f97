package mailer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"turnover/internal/mailer"
	"turnover/internal/turnover"
)

// deliverer answers each extension with the error it is given and records when each
// request came.
type deliverer struct {
	errs map[string]error
	at   []time.Time
}

func (d *deliverer) Deliver(_ context.Context, req turnover.MailRequest) (bool, error) {
	d.at = append(d.at, time.Now())
	return d.errs[req.Extension] == nil, d.errs[req.Extension]
}

func message(id, ext string) events.SQSMessage {
	body, _ := json.Marshal(turnover.MailRequest{Domain: "niftywidgets", Extension: ext, Purpose: turnover.LinkWelcome, Scope: "job-1"})
	return events.SQSMessage{MessageId: id, Body: string(body)}
}

func TestHandleRetriesOnlyWhatMayPass(t *testing.T) {
	d := &deliverer{errs: map[string]error{
		"1002": errors.New("TooManyRequestsException: slow down"),
		"1003": turnover.Errorf(turnover.EUNPROCESSABLE, "no email on file"),
		"1004": turnover.Errorf(turnover.ENOTFOUND, "no such user"),
	}}
	m := mailer.New(d, 1000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	resp, err := m.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		message("a", "1001"), message("b", "1002"), message("c", "1003"), message("d", "1004"),
		{MessageId: "e", Body: "not json"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "b" {
		t.Errorf("failures = %+v, want only the throttled b delivered again", resp.BatchItemFailures)
	}
	if len(d.at) != 4 {
		t.Errorf("%d deliveries, want 4 (the bad message is dropped unsent)", len(d.at))
	}
}

func TestHandlePacesAtTheRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		sends int
		want  time.Duration // the first send at once, the others 1/rate apart
	}{
		{"whole rate", 20, 6, 250 * time.Millisecond},
		// One of two instances sharing the SES sandbox's rate of 1 a second: a rate
		// rounded down to a whole number would send nothing after the first.
		{"share below one a second", 0.5, 2, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &deliverer{}
			m := mailer.New(d, tc.rate, slog.New(slog.NewTextHandler(io.Discard, nil)))
			var msgs []events.SQSMessage
			for i := range tc.sends {
				msgs = append(msgs, message(string(rune('a'+i)), "1001"))
			}
			if _, err := m.Handle(context.Background(), events.SQSEvent{Records: msgs}); err != nil {
				t.Fatal(err)
			}
			if len(d.at) != tc.sends {
				t.Fatalf("%d sends, want %d", len(d.at), tc.sends)
			}
			if got := d.at[tc.sends-1].Sub(d.at[0]); got < tc.want-10*time.Millisecond {
				t.Errorf("%d sends took %s, want at least %s at %v a second", tc.sends, got, tc.want, tc.rate)
			}
		})
	}
}

func TestHandleLeavesWhatItHasNoTimeFor(t *testing.T) {
	d := &deliverer{}
	m := mailer.New(d, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	resp, _ := m.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{message("a", "1001"), message("b", "1002"), message("c", "1003")}})
	if len(d.at) != 1 || len(resp.BatchItemFailures) != 2 {
		t.Errorf("%d sent, failures %+v; want 1 sent at 1 a second and the 2 others left to the queue", len(d.at), resp.BatchItemFailures)
	}
}

// sentButUnrecorded delivers every mail, yet fails to record it as sent.
type sentButUnrecorded struct{ n int }

func (d *sentButUnrecorded) Deliver(context.Context, turnover.MailRequest) (bool, error) {
	d.n++
	return true, errors.New("record mail as sent: throttled")
}

// A mail that went is never left to the queue, even when recording it failed: a second
// delivery would mail a second copy.
func TestHandleDoesNotRetryMailThatWent(t *testing.T) {
	d := &sentButUnrecorded{}
	m := mailer.New(d, 1000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	resp, err := m.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{message("a", "1001")}})
	if err != nil || d.n != 1 || len(resp.BatchItemFailures) != 0 {
		t.Errorf("%d deliveries, failures %+v, %v; want one and nothing left to the queue", d.n, resp.BatchItemFailures, err)
	}
}
