package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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
