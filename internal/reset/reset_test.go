package reset_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
		name  string
		opts  turnover.ResetOptions
		want  map[string]int
		audio int
	}{
		{"none", turnover.ResetOptions{}, map[string]int{}, 0},
		{"messages", turnover.ResetOptions{DeleteVoicemailMessages: true}, map[string]int{"voicemailMessages": 5}, 5},
		{"greetings", turnover.ResetOptions{DeleteVoicemailGreetings: true}, map[string]int{"voicemailGreetings": 3}, 3},
		{"rules", turnover.ResetOptions{DeleteAnsweringRules: true}, map[string]int{"answeringRules": 3}, 0},
		{"contacts", turnover.ResetOptions{DeleteCustomContacts: true}, map[string]int{"customContacts": 2}, 0},
		{"numbers", turnover.ResetOptions{UnassignPhoneNumbers: true}, map[string]int{"phoneNumbers": 1}, 0},
		{"devices", turnover.ResetOptions{RemoveDeviceLines: true}, map[string]int{"deviceLines": 3}, 0},
		{"recycle only", turnover.ResetOptions{Recycle: true}, map[string]int{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := reset.Plan(d, tt.opts)
			if got := p.Counts(tt.opts); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("counts = %v, want %v", got, tt.want)
			}
			if len(p.AudioKeys) != tt.audio {
				t.Errorf("%d audio keys, want %d", len(p.AudioKeys), tt.audio)
			}
			if p.Directory == nil || len(p.Devices) == 0 || p.Devices[0].Kind != turnover.DeviceSoftPhone {
				t.Errorf("the always-applied part is missing: directory %v, devices %v", p.Directory, p.Devices)
			}
		})
	}
	if p := reset.Plan(d, turnover.ResetOptions{DeleteAnsweringRules: true}); p.DefaultRule == nil || !p.DefaultRule.Default {
		t.Errorf("deleting rules must put the default rule back, got %v", p.DefaultRule)
	}
	if p := reset.Plan(d, turnover.ResetOptions{RemoveDeviceLines: true}); len(p.Lines) != 1 || p.Lines[0].Kind != turnover.DeviceDesk {
		t.Errorf("desk phone lines = %v, want the desk phone's line", p.Lines)
	}
}

// store is an in-memory reset.Store.
type store struct {
	mu       sync.Mutex
	data     map[string]turnover.UserData
	resetBy  map[string]string
	results  map[string]turnover.UserResult
	locks    map[string]string
	recycle  map[string]turnover.NewIdentity
	done     int
	failed   int
	failNext map[string]error // extension -> error of its next CommitReset
}

func newStore() *store {
	s := &store{data: map[string]turnover.UserData{}, resetBy: map[string]string{}, results: map[string]turnover.UserResult{},
		locks: map[string]string{}, recycle: map[string]turnover.NewIdentity{}, failNext: map[string]error{}}
	for _, d := range demo.Users() {
		s.data[d.User.Extension] = d
	}
	return s
}

func (s *store) AcquireLock(_ context.Context, _, ext, jobID string, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.locks[ext]; ok && j != jobID {
		return turnover.Errorf(turnover.ECONFLICT, "Extension %s is being reset by another job.", ext)
	}
	s.locks[ext] = jobID
	return nil
}

func (s *store) ReleaseLock(_ context.Context, _, ext, jobID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[ext] == jobID {
		delete(s.locks, ext)
	}
	return nil
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

func (s *store) GetRecycleRow(_ context.Context, _, _, ext string) (*turnover.NewIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recycle[ext]; ok {
		return &r, nil
	}
	return nil, nil
}

func (s *store) DeleteUserItems(context.Context, turnover.ResetPlan) error { return nil }

func (s *store) CommitReset(_ context.Context, jobID string, p turnover.ResetPlan, res turnover.UserResult) (bool, error) {
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
	delete(s.locks, p.Extension)
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

type audio struct {
	mu      sync.Mutex
	deleted []string
}

func (a *audio) DeleteAudio(_ context.Context, keys []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deleted = append(a.deleted, keys...)
	return nil
}

func TestResetBatch(t *testing.T) {
	st := newStore()
	svc := reset.New(st, &audio{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 4)
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
	svc := reset.New(st, &audio{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 1)
	_, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1",
		Options: turnover.ResetOptions{Recycle: true, DeleteVoicemailMessages: true}, Batch: turnover.Batch{Users: []string{"1009"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.results["1009"].Outcome; got != turnover.OutcomeRecyclePending {
		t.Errorf("outcome = %s, want recycle_pending", got)
	}
	st.recycle["1002"] = turnover.NewIdentity{Extension: "1002", FirstName: "Ann", LastName: "Lee"}
	_, err = svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1",
		Options: turnover.ResetOptions{Recycle: true}, Batch: turnover.Batch{Users: []string{"1002"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.results["1002"].Outcome; got != turnover.OutcomeRecycled {
		t.Errorf("outcome with a recycle row = %s, want recycled", got)
	}
}

func TestResetBatchLockedUserFailsAlone(t *testing.T) {
	st := newStore()
	st.locks["1002"] = "other-job"
	svc := reset.New(st, &audio{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 2)
	out, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Batch: turnover.Batch{Users: []string{"1002", "1009"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Done != 1 || out.Failed != 1 {
		t.Errorf("out = %+v, want 1009 done and 1002 failed", out)
	}
	if r := st.results["1002"]; r.Outcome != turnover.OutcomeFailed || !strings.Contains(r.Error, "another job") {
		t.Errorf("1002 = %+v, want a failure naming the other job", r)
	}
	if st.locks["1002"] != "other-job" {
		t.Errorf("the other job's lock was taken: %q", st.locks["1002"])
	}
	if _, held := st.locks["1009"]; held {
		t.Errorf("1009's lock was not released")
	}
}
