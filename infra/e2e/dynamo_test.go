package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"turnover/internal/reset"
	"turnover/internal/turnover"
)

// The DynamoDB adapter against moto, through the real SDK, in a domain of its own.

func seedDomain(t *testing.T, domain string, n int) {
	t.Helper()
	for i := range n {
		d := turnover.UserData{
			User: turnover.User{Domain: domain, Extension: fmt.Sprintf("%d", 2000+i), FirstName: "First", LastName: fmt.Sprintf("Last%d", i),
				Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive},
			Devices: []turnover.Device{{ID: "soft", Kind: turnover.DeviceSoftPhone}},
		}
		for j := range 30 {
			d.Contacts = append(d.Contacts, turnover.Contact{ID: fmt.Sprintf("c%02d", j), FirstName: "C", LastName: "D", Phone: "+1555"})
		}
		if err := store().PutUserData(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListUsersPagesAndCursorsStayInTheirDomain(t *testing.T) {
	ctx := context.Background()
	seedDomain(t, "pagingtest", 5)
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		users, next, err := store().ListUsers(ctx, "pagingtest", turnover.UserFilter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			seen = append(seen, u.Extension)
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = next
		if _, _, err := store().ListUsers(ctx, "niftywidgets", turnover.UserFilter{Limit: 2, Cursor: next}); turnover.ErrorCode(err) != turnover.EINVALID {
			t.Errorf("a cursor of pagingtest used on niftywidgets: %v, want EINVALID", err)
		}
	}
	if fmt.Sprint(seen) != "[2000 2001 2002 2003 2004]" {
		t.Errorf("pages gave %v", seen)
	}
	if _, _, err := store().ListUsers(ctx, "pagingtest", turnover.UserFilter{Cursor: "!!not-a-cursor"}); turnover.ErrorCode(err) != turnover.EINVALID {
		t.Errorf("garbage cursor: %v, want EINVALID", err)
	}
}

func TestApplyResetRecordsOnce(t *testing.T) {
	ctx := context.Background()
	const domain = "applytest"
	seedDomain(t, domain, 1)
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: "job-a", Status: turnover.JobRunning, Total: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: "job-a"}); turnover.ErrorCode(err) != turnover.ECONFLICT {
		t.Errorf("second CreateJob: %v, want ECONFLICT", err)
	}
	data, _, err := store().LoadUserData(ctx, domain, "2000")
	if err != nil {
		t.Fatal(err)
	}
	opts := turnover.ResetOptions{DeleteCustomContacts: true}
	plan := reset.Plan(data, opts)
	res := turnover.UserResult{Extension: "2000", Outcome: turnover.OutcomeReset, Deleted: plan.Counts(opts), At: time.Now()}
	for i, want := range []int{1, 0} {
		if busy, err := store().LockUsers(ctx, domain, "job-a", []string{"2000"}, time.Minute); err != nil || len(busy) != 0 {
			t.Fatalf("lock: %v %v", busy, err)
		}
		if err := store().ApplyResets(ctx, []turnover.ResetPlan{plan}); err != nil {
			t.Fatal(err)
		}
		c := turnover.ResetCommit{Extension: "2000", Result: &res, Plan: &plan, Locked: true}
		if i == 1 {
			c.ReadResetJob = "job-a" // what a second read would see
		}
		out, err := store().CommitResets(ctx, domain, "job-a", []turnover.ResetCommit{c})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Recorded) != want {
			t.Errorf("commit #%d = %+v, want %d recorded", i+1, out, want)
		}
	}
	after, resetJob, err := store().LoadUserData(ctx, domain, "2000")
	if err != nil {
		t.Fatal(err)
	}
	if resetJob != "job-a" || len(after.Contacts) != 0 || len(after.Devices) != 0 || after.User.Status != turnover.StatusSetupRequired || after.User.LastName != "" {
		t.Errorf("after reset: job %q, %d contacts (30 deleted in batches of 25), %d devices, %+v", resetJob, len(after.Contacts), len(after.Devices), after.User)
	}
	job, err := store().GetJob(ctx, domain, "job-a")
	if err != nil {
		t.Fatal(err)
	}
	results, err := store().ListResults(ctx, domain, "job-a")
	if err != nil {
		t.Fatal(err)
	}
	if job.Done != 1 || job.Failed != 0 || len(results) != 1 || results[0].Deleted["customContacts"] != 30 {
		t.Errorf("job = %+v, results = %+v; want one user counted once", job, results)
	}
	if out, err := store().CommitResets(ctx, domain, "job-a", []turnover.ResetCommit{{Extension: "2000", Result: &turnover.UserResult{Extension: "2000", Outcome: turnover.OutcomeFailed}}}); err != nil || len(out.Already) != 1 {
		t.Errorf("a failure after success: %+v, %v; want already recorded", out, err)
	}
	finished, err := store().FinishJob(ctx, domain, "job-a", false)
	if err != nil || finished.Status != turnover.JobSucceeded {
		t.Errorf("finish = %+v, %v", finished, err)
	}
	if _, err := store().GetJob(ctx, "niftywidgets", "job-a"); turnover.ErrorCode(err) != turnover.ENOTFOUND {
		t.Errorf("job of applytest read through niftywidgets: %v, want ENOTFOUND", err)
	}
}

func TestGetUsersBeyondOneBatch(t *testing.T) {
	ctx := context.Background()
	seedDomain(t, "batchget", 3)
	exts := []string{"2000", "2001", "2002"}
	for i := range 150 {
		exts = append(exts, fmt.Sprintf("%d", 5000+i))
	}
	got, err := store().GetUsers(ctx, "batchget", exts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("GetUsers found %d users, want the 3 that exist", len(got))
	}
}

func TestLockLetsOneJobIn(t *testing.T) {
	ctx := context.Background()
	const domain = "locktest"
	seedDomain(t, domain, 3)
	users := []string{"2000", "2001", "2002"}
	type outcome struct {
		job  string
		busy map[string]bool
	}
	outs := make(chan outcome, 2)
	for _, job := range []string{"job-x", "job-y"} {
		go func() {
			busy, err := store().LockUsers(ctx, domain, job, users, time.Minute)
			if err != nil {
				t.Error(err)
			}
			outs <- outcome{job, busy}
		}()
	}
	holder := map[string]string{}
	for range 2 {
		o := <-outs
		for _, ext := range users {
			if !o.busy[ext] {
				if holder[ext] != "" {
					t.Errorf("%s locked by both %s and %s", ext, holder[ext], o.job)
				}
				holder[ext] = o.job
			}
		}
	}
	if len(holder) != 3 {
		t.Fatalf("locks = %v, want each user locked by exactly one job", holder)
	}
	// The holder may take it again (a retried batch); another job may not.
	if busy, err := store().LockUsers(ctx, domain, holder["2000"], []string{"2000", "4242"}, time.Minute); err != nil || busy["2000"] || !busy["4242"] {
		t.Errorf("the holder again: %v %v; want 2000 locked and 4242 (no such user) not", busy, err)
	}
	if busy, _ := store().LockUsers(ctx, domain, "job-z", []string{"2000"}, time.Minute); !busy["2000"] {
		t.Errorf("a third job took a held lock")
	}
	// A commit that only unlocks releases it; an expired lock does not keep the user locked.
	if _, err := store().CommitResets(ctx, domain, holder["2000"], []turnover.ResetCommit{{Extension: "2000", Locked: true}}); err != nil {
		t.Fatal(err)
	}
	if busy, err := store().LockUsers(ctx, domain, "job-z", []string{"2000"}, -time.Minute); err != nil || busy["2000"] {
		t.Errorf("after release: %v %v", busy, err)
	}
	if busy, err := store().LockUsers(ctx, domain, "job-new", []string{"2000"}, time.Minute); err != nil || busy["2000"] {
		t.Errorf("an expired lock held the user: %v %v", busy, err)
	}
}

// A job's saved plan comes back with the user's data until the job commits the user; it
// is saved only while the job holds the lock, and a lapsed lock is a retryable error. A
// plan another job left behind is removed by the commit of the job that took over.
func TestSavedPlansComeBackUntilTheCommit(t *testing.T) {
	ctx := context.Background()
	const domain = "plantest"
	seedDomain(t, domain, 2)
	retryable := func(err error) bool {
		return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
	}
	saved := func(ext string) *turnover.SavedPlan {
		t.Helper()
		data, _, err := store().LoadUserData(ctx, domain, ext)
		if err != nil {
			t.Fatal(err)
		}
		return data.Saved
	}
	counts := map[string]int{"customContacts": 30, "voicemailMessages": 0}

	if err := store().SavePlans(ctx, domain, []turnover.SavedPlan{{Extension: "2000", JobID: "job-p", Counts: counts}}); err == nil || !retryable(err) {
		t.Errorf("saving without the lock: %v, want a retryable error", err)
	}
	if p := saved("2000"); p != nil {
		t.Errorf("saved without the lock: %+v", p)
	}

	// job-p's lock lapses at once, so job-q can take 2000 over below.
	if busy, err := store().LockUsers(ctx, domain, "job-p", []string{"2000", "2001"}, -time.Minute); err != nil || len(busy) != 0 {
		t.Fatalf("lock: %v %v", busy, err)
	}
	err := store().SavePlans(ctx, domain, []turnover.SavedPlan{
		{Extension: "2000", JobID: "job-p", Counts: counts}, {Extension: "2001", JobID: "job-p", Counts: map[string]int{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := saved("2000"); p == nil || p.JobID != "job-p" || p.Extension != "2000" || fmt.Sprint(p.Counts) != fmt.Sprint(counts) {
		t.Errorf("2000's saved plan = %+v, want job-p's with %v", p, counts)
	}
	if p := saved("2001"); p == nil || p.JobID != "job-p" || p.Counts == nil || len(p.Counts) != 0 {
		t.Errorf("2001's saved plan = %+v, want job-p's with no counts", p)
	}

	// A commit that only unlocks removes the plan too.
	if _, err := store().CommitResets(ctx, domain, "job-p", []turnover.ResetCommit{{Extension: "2001", Locked: true}}); err != nil {
		t.Fatal(err)
	}
	if p := saved("2001"); p != nil {
		t.Errorf("2001's plan after the unlock = %+v, want none", p)
	}

	// job-q takes 2000 over: job-p can no longer save, and job-q's commit removes job-p's plan.
	if busy, err := store().LockUsers(ctx, domain, "job-q", []string{"2000"}, time.Minute); err != nil || busy["2000"] {
		t.Fatalf("take over: %v %v", busy, err)
	}
	if err := store().SavePlans(ctx, domain, []turnover.SavedPlan{{Extension: "2000", JobID: "job-p", Counts: counts}}); err == nil || !retryable(err) {
		t.Errorf("saving after the lock lapsed: %v, want a retryable error", err)
	}
	data, _, err := store().LoadUserData(ctx, domain, "2000")
	if err != nil {
		t.Fatal(err)
	}
	if data.Saved == nil || data.Saved.JobID != "job-p" {
		t.Fatalf("2000's saved plan = %+v, want job-p's still", data.Saved)
	}
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: "job-q", Status: turnover.JobRunning, Total: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	opts := turnover.ResetOptions{DeleteCustomContacts: true}
	plan := reset.Plan(data, opts)
	res := turnover.UserResult{Extension: "2000", Outcome: turnover.OutcomeReset, Deleted: plan.Counts(opts), At: time.Now()}
	out, err := store().CommitResets(ctx, domain, "job-q", []turnover.ResetCommit{{Extension: "2000", Result: &res, Plan: &plan, Locked: true}})
	if err != nil || len(out.Recorded) != 1 {
		t.Fatalf("commit = %+v, %v", out, err)
	}
	if p := saved("2000"); p != nil {
		t.Errorf("2000's plan after job-q's commit = %+v, want none", p)
	}
}

// A commit whose job item is gone cannot count its results: it fails instead of trying
// the same transaction again and again.
func TestCommitWithoutItsJobFails(t *testing.T) {
	ctx := context.Background()
	const domain = "nojobtest"
	seedDomain(t, domain, 1)
	if busy, err := store().LockUsers(ctx, domain, "job-gone", []string{"2000"}, time.Minute); err != nil || len(busy) != 0 {
		t.Fatalf("lock: %v %v", busy, err)
	}
	data, _, err := store().LoadUserData(ctx, domain, "2000")
	if err != nil {
		t.Fatal(err)
	}
	plan := reset.Plan(data, turnover.ResetOptions{})
	res := turnover.UserResult{Extension: "2000", Outcome: turnover.OutcomeReset, At: time.Now()}
	done := make(chan error, 1)
	go func() {
		_, err := store().CommitResets(ctx, domain, "job-gone", []turnover.ResetCommit{{Extension: "2000", Result: &res, Plan: &plan, Locked: true}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("commit without a job item succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("commit without a job item still running after 20 s")
	}
}
