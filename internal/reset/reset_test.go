package reset_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"turnover/internal/demo"
	"turnover/internal/dynamo"
	"turnover/internal/reset"
	"turnover/internal/s3store"
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

// store is an in-memory reset.Store. ApplyResets deletes the plans' messages and
// greetings from data, as the table would.
type store struct {
	mu        sync.Mutex
	data      map[string]turnover.UserData
	saved     map[string]turnover.SavedPlan
	resetBy   map[string]string
	results   map[string]turnover.UserResult
	locks     map[string]string
	recycle   map[string]turnover.NewIdentity
	done      int
	failed    int
	loads     map[string]int
	applied   int   // plans ApplyResets carried out and reported done
	applyCall int   // ApplyResets calls, failed ones included
	failApply error // the next ApplyResets fails with it, deleting nothing
	lostApply error // the next ApplyResets deletes, then fails with it (its answer lost)
	// applyVia, when set, is called with each ApplyResets' plans before they are applied;
	// its error fails the call.
	applyVia  func(context.Context, []turnover.ResetPlan) error
	saveVia   func(context.Context, string, []turnover.SavedPlan) error // likewise for SavePlans
	staleOnce map[string]bool                                           // users whose next commit finds the profile changed
	audio     *audio                                                    // to check what went before ApplyResets
	early     []string                                                  // items ApplyResets got before their audio was deleted
}

func newStore() *store {
	s := &store{data: map[string]turnover.UserData{}, saved: map[string]turnover.SavedPlan{}, resetBy: map[string]string{}, results: map[string]turnover.UserResult{},
		locks: map[string]string{}, recycle: map[string]turnover.NewIdentity{}, loads: map[string]int{}, staleOnce: map[string]bool{}}
	for _, d := range demo.Users() {
		s.data[d.User.Extension] = d
	}
	return s
}

func (s *store) LockUsers(_ context.Context, _, jobID string, exts []string, _ time.Duration) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	not := map[string]bool{}
	for _, ext := range exts {
		if _, ok := s.data[ext]; !ok || (s.locks[ext] != "" && s.locks[ext] != jobID) {
			not[ext] = true
			continue
		}
		s.locks[ext] = jobID
	}
	return not, nil
}

func (s *store) LoadUserData(_ context.Context, _, ext string) (turnover.UserData, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads[ext]++
	d, ok := s.data[ext]
	if !ok {
		return d, "", turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist.", ext)
	}
	if p, ok := s.saved[ext]; ok {
		d.Saved = &p
	}
	return d, s.resetBy[ext], nil
}

func (s *store) SavePlans(ctx context.Context, domain string, plans []turnover.SavedPlan) error {
	if s.saveVia != nil {
		if err := s.saveVia(ctx, domain, plans); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range plans {
		if s.locks[p.Extension] != p.JobID {
			return &smithy.GenericAPIError{Code: "ThrottlingException", Message: "stand-in for a lapsed lock"}
		}
	}
	for _, p := range plans {
		s.saved[p.Extension] = p
	}
	return nil
}

func (s *store) GetResults(_ context.Context, _, _ string, exts []string) (map[string]turnover.UserResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]turnover.UserResult{}
	for _, ext := range exts {
		if r, ok := s.results[ext]; ok {
			out[ext] = r
		}
	}
	return out, nil
}

func (s *store) GetRecycleRowsOf(_ context.Context, _, _ string, exts []string) (map[string]turnover.NewIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]turnover.NewIdentity{}
	for _, ext := range exts {
		if r, ok := s.recycle[ext]; ok {
			out[ext] = r
		}
	}
	return out, nil
}

func (s *store) ApplyResets(ctx context.Context, plans []turnover.ResetPlan) error {
	if s.applyVia != nil {
		if err := s.applyVia(ctx, plans); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyCall++
	if err := s.failApply; err != nil {
		s.failApply = nil
		return err
	}
	deleted := map[string]bool{}
	if s.audio != nil {
		for _, k := range s.audio.keys() {
			deleted[k] = true
		}
	}
	for _, p := range plans {
		for _, m := range p.Voicemail {
			if s.audio != nil && !deleted[m.AudioKey] {
				s.early = append(s.early, p.Extension+" message "+m.ID)
			}
		}
		for _, g := range p.Greetings {
			if s.audio != nil && !deleted[g.AudioKey] {
				s.early = append(s.early, p.Extension+" greeting "+g.ID)
			}
		}
		d := s.data[p.Extension]
		if len(p.Voicemail) > 0 {
			d.Voicemail = nil
		}
		if len(p.Greetings) > 0 {
			d.Greetings = nil
		}
		s.data[p.Extension] = d
	}
	if err := s.lostApply; err != nil {
		s.lostApply = nil
		return err
	}
	s.applied += len(plans)
	return nil
}

func (s *store) CommitResets(_ context.Context, _, jobID string, commits []turnover.ResetCommit) (turnover.CommitOutcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out turnover.CommitOutcome
	for _, c := range commits {
		switch {
		case c.Plan != nil && s.staleOnce[c.Extension]:
			delete(s.staleOnce, c.Extension)
			out.Stale = append(out.Stale, c.Extension)
			continue
		case c.Result == nil:
		case s.results[c.Extension].Extension != "":
			out.Already = append(out.Already, c.Extension)
		default:
			s.results[c.Extension] = *c.Result
			out.Recorded = append(out.Recorded, c.Extension)
			if c.Result.Outcome == turnover.OutcomeFailed {
				s.failed++
			} else {
				s.done++
				s.resetBy[c.Extension] = jobID
				delete(s.saved, c.Extension)
			}
		}
		if c.Locked && s.locks[c.Extension] == jobID {
			delete(s.locks, c.Extension)
			delete(s.saved, c.Extension)
		}
	}
	return out, nil
}

type audio struct {
	mu      sync.Mutex
	deleted []string
	fail    error // the next DeleteAudio fails with it, deleting nothing
}

func (a *audio) DeleteAudio(_ context.Context, keys []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail; err != nil {
		a.fail = nil
		return err
	}
	a.deleted = append(a.deleted, keys...)
	return nil
}

func (a *audio) keys() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.deleted)
}

type queue struct {
	mu   sync.Mutex
	reqs []turnover.MailRequest
}

func (q *queue) Request(_ context.Context, reqs []turnover.MailRequest) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reqs = append(q.reqs, reqs...)
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestResetBatch(t *testing.T) {
	st, a := newStore(), &audio{}
	svc := reset.New(st, a, &queue{}, quiet(), 4)
	in := reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Options: turnover.ResetOptions{DeleteVoicemailMessages: true},
		Batch: turnover.Batch{Users: []string{"1009", "1002", "4242"}}}
	st.failApply = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}

	out, err := svc.ResetBatch(context.Background(), in)
	var transient *reset.TransientError
	if !errors.As(err, &transient) {
		t.Fatalf("a throttled write must fail the batch as transient, got %v", err)
	}
	if out.Done != 0 || out.Failed != 0 || len(st.results) != 0 {
		t.Errorf("first try = %+v, results %v; want nothing recorded", out, st.results)
	}

	out, err = svc.ResetBatch(context.Background(), in) // the state machine's retry
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if out.Done != 2 || out.Failed != 1 {
		t.Errorf("retry = %+v, want 1009 and 1002 done, 4242 failed", out)
	}
	if r := st.results["4242"]; r.Outcome != turnover.OutcomeFailed || !strings.Contains(r.Error, "does not exist") {
		t.Errorf("unknown extension result = %+v", r)
	}
	keys := 0
	for _, d := range demo.Users() {
		if ext := d.User.Extension; ext == "1009" || ext == "1002" {
			keys += len(reset.Plan(d, in.Options).AudioKeys)
		}
	}
	if len(a.deleted) != 2*keys || st.applied != 2 {
		t.Errorf("audio deleted %d keys in total, %d plans applied; want the %d message recordings of 1009 and 1002 in each of two tries, and 2 plans", len(a.deleted), st.applied, keys)
	}

	out, err = svc.ResetBatch(context.Background(), in) // a late duplicate of the batch
	if err != nil || out.Done+out.Failed != 0 || st.done != 2 || st.failed != 1 || st.applied != 2 {
		t.Errorf("a third run = %+v, %v; store %d done, %d failed, %d applied: want nothing again", out, err, st.done, st.failed, st.applied)
	}
	if len(st.locks) != 0 {
		t.Errorf("locks left: %v", st.locks)
	}
}

func TestResetBatchReadsAChangedUserAgain(t *testing.T) {
	st := newStore()
	st.staleOnce["1002"] = true
	svc := reset.New(st, &audio{}, &queue{}, quiet(), 4)
	out, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Batch: turnover.Batch{Users: []string{"1002", "1009"}}})
	if err != nil || out.Done != 2 {
		t.Fatalf("out = %+v, %v; want both done", out, err)
	}
	if st.loads["1002"] != 2 || st.loads["1009"] != 1 {
		t.Errorf("reads = %v, want 1002 read twice (it changed under the first read), 1009 once", st.loads)
	}
}

func TestResetBatchRecycleOutcomeAndMail(t *testing.T) {
	st, q := newStore(), &queue{}
	svc := reset.New(st, &audio{}, q, quiet(), 1)
	_, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1",
		Options: turnover.ResetOptions{Recycle: true, DeleteVoicemailMessages: true}, Batch: turnover.Batch{Users: []string{"1009"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.results["1009"].Outcome; got != turnover.OutcomeRecyclePending {
		t.Errorf("outcome = %s, want recycle_pending", got)
	}
	st.recycle["1002"] = turnover.NewIdentity{Extension: "1002", FirstName: "Ann", LastName: "Lee", SendWelcomeEmail: true}
	in := reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Options: turnover.ResetOptions{Recycle: true}, Batch: turnover.Batch{Users: []string{"1002"}}}
	if _, err = svc.ResetBatch(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if got := st.results["1002"].Outcome; got != turnover.OutcomeRecycled {
		t.Errorf("outcome with a recycle row = %s, want recycled", got)
	}
	want := turnover.MailRequest{Domain: "niftywidgets", Extension: "1002", Purpose: turnover.LinkWelcome, Scope: "j1"}
	if len(q.reqs) != 1 || q.reqs[0] != want {
		t.Errorf("queued mail = %+v, want only %+v", q.reqs, want)
	}
	// A retried batch queues the same request again (the mailer sends one copy per scope).
	if _, err = svc.ResetBatch(context.Background(), in); err != nil || len(q.reqs) != 2 || q.reqs[1] != want {
		t.Errorf("retry queued %+v, %v", q.reqs, err)
	}
}

func TestResetBatchLockedUserFailsAlone(t *testing.T) {
	st := newStore()
	st.locks["1002"] = "other-job"
	svc := reset.New(st, &audio{}, &queue{}, quiet(), 2)
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

func TestResetBatchPermanentErrorIsNotTransient(t *testing.T) {
	st := newStore()
	st.failApply = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"}
	svc := reset.New(st, &audio{}, &queue{}, quiet(), 4)
	_, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Batch: turnover.Batch{Users: []string{"1009"}}})
	var transient *reset.TransientError
	if err == nil || errors.As(err, &transient) {
		t.Errorf("access denied = %v, want a plain error the state machine does not retry", err)
	}
	if len(st.results) != 0 {
		t.Errorf("results = %v, want none", st.results)
	}
}

// A batch whose first try stops part way, wherever it stops, records on the retry the
// counts the first try saw, and deletes no item before its audio: the invariant that
// keeps a retry from losing audio keys or counts.
func TestResetBatchRetryKeepsTheFirstTrysCounts(t *testing.T) {
	opts := turnover.ResetOptions{DeleteVoicemailMessages: true, DeleteVoicemailGreetings: true, DeleteCustomContacts: true}
	users := []string{"1002", "1009"}
	want, audioKeys := map[string]string{}, []string{}
	for _, d := range demo.Users() {
		if slices.Contains(users, d.User.Extension) {
			p := reset.Plan(d, opts)
			want[d.User.Extension] = fmt.Sprint(p.Counts(opts))
			audioKeys = append(audioKeys, p.AudioKeys...)
		}
	}
	slowDown := &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}
	tests := []struct {
		name string
		// arm makes the first try stop part way.
		arm func(*store, *audio)
		// firstFails says the first try returns a transient error (else it goes on by
		// itself, reading the stale users again).
		firstFails bool
		// applyCalls is how many ApplyResets calls the first try makes.
		applyCalls int
	}{
		{"items deleted, the answer lost", func(s *store, _ *audio) {
			s.lostApply = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate of requests exceeds the allowed throughput."}
		}, true, 1},
		{"audio delete fails", func(_ *store, a *audio) { a.fail = slowDown }, true, 0},
		{"commit finds a profile changed", func(s *store, _ *audio) { s.staleOnce["1009"] = true }, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, a := newStore(), &audio{}
			st.audio = a
			tt.arm(st, a)
			svc := reset.New(st, a, &queue{}, quiet(), 4)
			in := reset.BatchInput{Domain: "niftywidgets", JobID: "j1", Options: opts, Batch: turnover.Batch{Users: users}}

			_, err := svc.ResetBatch(context.Background(), in)
			var transient *reset.TransientError
			if got := errors.As(err, &transient); got != tt.firstFails {
				t.Fatalf("first try = %v, want a transient error: %v", err, tt.firstFails)
			}
			if st.applyCall != tt.applyCalls {
				t.Errorf("the first try called ApplyResets %d times, want %d", st.applyCall, tt.applyCalls)
			}
			if tt.firstFails {
				if _, err := svc.ResetBatch(context.Background(), in); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
			for _, ext := range users {
				if got := fmt.Sprint(st.results[ext].Deleted); got != want[ext] {
					t.Errorf("%s recorded %s, want the first try's %s", ext, got, want[ext])
				}
			}
			if len(st.early) > 0 {
				t.Errorf("items deleted before their audio: %v", st.early)
			}
			deleted := a.keys()
			for _, k := range audioKeys {
				if !slices.Contains(deleted, k) {
					t.Errorf("audio %s never deleted", k)
				}
			}
			if len(st.saved) != 0 || len(st.locks) != 0 {
				t.Errorf("saved plans %v and locks %v left after the commit", st.saved, st.locks)
			}
		})
	}
}

// dynamoAPI answers BatchWriteItem with every item unprocessed (throttled for good) and
// TransactWriteItems with every condition failed; nothing else is called.
type dynamoAPI struct{ dynamo.API }

func (dynamoAPI) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
}

func (dynamoAPI) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	reasons := make([]dynamotypes.CancellationReason, len(in.TransactItems))
	for i := range reasons {
		reasons[i].Code = aws.String("ConditionalCheckFailed")
	}
	return nil, &dynamotypes.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
}

// s3API answers DeleteObjects with every key not deleted, for code.
type s3API struct {
	s3store.API
	code string
}

func (f s3API) DeleteObjects(_ context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	out := &s3.DeleteObjectsOutput{}
	for _, o := range in.Delete.Objects {
		out.Errors = append(out.Errors, s3types.Error{Key: o.Key, Code: aws.String(f.code), Message: aws.String("not deleted")})
	}
	return out, nil
}

// What the real adapters return when AWS leaves work undone, a batch classes as the
// state machine must see it: throttling and S3's passing per-key errors are transient (the
// batch is retried), a key S3 refuses is not.
func TestResetBatchClassesAdapterFailures(t *testing.T) {
	table := dynamo.New(dynamoAPI{}, "table")
	tests := []struct {
		name      string
		arm       func(*store) reset.Audio
		transient bool
	}{
		{"items left unprocessed", func(s *store) reset.Audio {
			s.applyVia = table.ApplyResets
			return &audio{}
		}, true},
		{"a lock lapsed before the plans were saved", func(s *store) reset.Audio {
			s.saveVia = table.SavePlans
			return &audio{}
		}, true},
		{"audio keys left by SlowDown", func(*store) reset.Audio { return s3store.New(s3API{code: "SlowDown"}, "bucket") }, true},
		{"audio keys left by InternalError", func(*store) reset.Audio { return s3store.New(s3API{code: "InternalError"}, "bucket") }, true},
		{"audio keys refused", func(*store) reset.Audio { return s3store.New(s3API{code: "AccessDenied"}, "bucket") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the adapters back off between attempts
			st := newStore()
			svc := reset.New(st, tt.arm(st), &queue{}, quiet(), 4)
			_, err := svc.ResetBatch(context.Background(), reset.BatchInput{Domain: "niftywidgets", JobID: "j1",
				Options: turnover.ResetOptions{DeleteVoicemailMessages: true}, Batch: turnover.Batch{Users: []string{"1009"}}})
			var transient *reset.TransientError
			if err == nil || errors.As(err, &transient) != tt.transient {
				t.Errorf("batch = %v, want an error, transient: %v", err, tt.transient)
			}
			if len(st.results) != 0 {
				t.Errorf("results = %v, want none", st.results)
			}
		})
	}
}
