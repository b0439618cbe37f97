package reset_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/aws/smithy-go"

	"turnover/internal/demo"
	"turnover/internal/reset"
	"turnover/internal/turnover"
)

func TestPlanAlwaysPart(t *testing.T) {
	d := demo.Users()[8] // 1009 Malcom Reynolds
	p := reset.Plan(d, turnover.ResetOptions{})
	if p.Directory == nil || p.Directory.LastName != "Reynolds" {
		t.Errorf("directory entry = %v, want Reynolds's", p.Directory)
	}
	if len(p.Devices) != 1 || p.Devices[0].Kind != turnover.DeviceSoftPhone {
		t.Errorf("devices = %v, want the soft phone only", p.Devices)
	}
	if len(p.Voicemail)+len(p.Greetings)+len(p.Rules)+len(p.Contacts)+len(p.Numbers)+len(p.Lines)+len(p.AudioKeys) != 0 || p.DefaultRule != nil {
		t.Errorf("no options selected but plan deletes more: %+v", p)
	}
}

func TestPlanOptions(t *testing.T) {
	d := demo.Users()[8]
	tests := []struct {
		name string
		opts turnover.ResetOptions
		want map[string]int
	}{
		{"messages", turnover.ResetOptions{DeleteVoicemailMessages: true}, map[string]int{"voicemailMessages": 5, "audioObjects": 5, "softPhones": 1}},
		{"greetings", turnover.ResetOptions{DeleteVoicemailGreetings: true}, map[string]int{"voicemailGreetings": 3, "audioObjects": 3, "softPhones": 1}},
		{"rules", turnover.ResetOptions{DeleteAnsweringRules: true}, map[string]int{"answeringRules": 3, "softPhones": 1}},
		{"contacts", turnover.ResetOptions{DeleteCustomContacts: true}, map[string]int{"customContacts": 2, "softPhones": 1}},
		{"numbers", turnover.ResetOptions{UnassignPhoneNumbers: true}, map[string]int{"phoneNumbers": 1, "softPhones": 1}},
		{"devices", turnover.ResetOptions{RemoveDeviceLines: true}, map[string]int{"deviceLines": 1, "softPhones": 1, "mobileAppPhones": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reset.Plan(d, tt.opts).Counts()
			for k, v := range got {
				want := tt.want[k]
				if k == "directoryEntries" {
					want = 1
				}
				if v != want {
					t.Errorf("%s = %d, want %d", k, v, want)
				}
			}
		})
	}
	if p := reset.Plan(d, turnover.ResetOptions{DeleteAnsweringRules: true}); p.DefaultRule == nil || !p.DefaultRule.Default {
		t.Errorf("deleting rules must put the default rule back, got %v", p.DefaultRule)
	}
}

// store is an in-memory reset.Store.
type store struct {
	mu       sync.Mutex
	data     map[string]turnover.UserData
	resetBy  map[string]string
	results  map[string]turnover.UserResult
	done     int
	failed   int
	failNext map[string]error // extension -> error of its next ApplyReset
}

func newStore() *store {
	s := &store{data: map[string]turnover.UserData{}, resetBy: map[string]string{}, results: map[string]turnover.UserResult{}, failNext: map[string]error{}}
	for _, d := range demo.Users() {
		s.data[d.User.Extension] = d
	}
	return s
}

func (s *store) LoadUserData(_ context.Context, _, ext string) (turnover.UserData, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[ext]
	if !ok {
		return d, "", turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist.", ext)
	}
	return d, s.resetBy[ext], nil
}

func (s *store) ApplyReset(_ context.Context, jobID string, p turnover.ResetPlan, res turnover.UserResult) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext[p.Extension]; err != nil {
		delete(s.failNext, p.Extension)
		return false, err
	}
	if _, ok := s.results[p.Extension]; ok {
		return false, nil
	}
	s.resetBy[p.Extension], s.results[p.Extension] = jobID, res
	s.done++
	return true, nil
}

func (s *store) RecordFailure(_ context.Context, _, _ string, res turnover.UserResult) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.results[res.Extension]; ok {
		return false, nil
	}
	s.results[res.Extension] = res
	s.failed++
	return true, nil
}

func (s *store) FinishJob(context.Context, string, string, bool) (turnover.Job, error) {
	return turnover.Job{}, nil
}

type audio struct{ deleted []string }

func (a *audio) DeleteAudio(_ context.Context, keys []string) error {
	a.deleted = append(a.deleted, keys...)
	return nil
}

func TestResetBatch(t *testing.T) {
	st := newStore()
	svc := reset.New(st, &audio{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 4)
	in := reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Batch: turnover.Batch{Users: []string{"1009", "1002", "4242"}}}
	st.failNext["1002"] = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}

	out, err := svc.ResetBatch(context.Background(), in)
	var transient *reset.TransientError
	if !errors.As(err, &transient) {
		t.Fatalf("a throttled user must fail the batch as transient, got %v", err)
	}
	if out.Done != 1 || out.Failed != 1 {
		t.Errorf("first try = %+v, want 1 done (1009), 1 failed (4242)", out)
	}
	if r := st.results["4242"]; r.Outcome != turnover.OutcomeFailed || r.Error == "" {
		t.Errorf("unknown extension result = %+v", r)
	}

	out, err = svc.ResetBatch(context.Background(), in) // the state machine's retry
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if out.Done != 1 || out.Failed != 0 {
		t.Errorf("retry = %+v, want only 1002 newly done", out)
	}
	if st.done != 2 || st.failed != 1 {
		t.Errorf("store counted %d done, %d failed; want 2 and 1 (nothing twice)", st.done, st.failed)
	}
}

func TestResetBatchRecycleOutcome(t *testing.T) {
	st := newStore()
	svc := reset.New(st, &audio{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	_, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1",
		Options: turnover.ResetOptions{Recycle: true, DeleteVoicemailMessages: true}, Batch: turnover.Batch{Users: []string{"1009"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.results["1009"].Outcome; got != turnover.OutcomeRecyclePending {
		t.Errorf("outcome = %s, want recycle_pending", got)
	}
}
