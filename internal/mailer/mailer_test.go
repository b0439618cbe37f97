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
	d := &deliverer{}
	m := mailer.New(d, 20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var msgs []events.SQSMessage
	for i := range 6 {
		msgs = append(msgs, message(string(rune('a'+i)), "1001"))
	}
	if _, err := m.Handle(context.Background(), events.SQSEvent{Records: msgs}); err != nil {
		t.Fatal(err)
	}
	// 6 sends at 20 a second: the first at once, the other 5 at least 50 ms apart.
	if got := d.at[5].Sub(d.at[0]); got < 240*time.Millisecond {
		t.Errorf("6 sends took %s, want at least 250ms at 20 a second", got)
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
