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
	for i, want := range []bool{true, false} {
		if err := store().AcquireLock(ctx, domain, "2000", "job-a", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := store().DeleteUserItems(ctx, plan); err != nil {
			t.Fatal(err)
		}
		recorded, err := store().CommitReset(ctx, "job-a", plan, res)
		if err != nil {
			t.Fatal(err)
		}
		if recorded != want {
			t.Errorf("commit #%d recorded = %v, want %v", i+1, recorded, want)
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
	if recorded, err := store().RecordFailure(ctx, domain, "job-a", turnover.UserResult{Extension: "2000", Outcome: turnover.OutcomeFailed}); err != nil || recorded {
		t.Errorf("a failure after success: recorded %v, %v; want not recorded", recorded, err)
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
	seedDomain(t, domain, 1)
	errs := make(chan error, 2)
	for _, job := range []string{"job-x", "job-y"} {
		go func() { errs <- store().AcquireLock(ctx, domain, "2000", job, time.Minute) }()
	}
	var won, lost int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case turnover.ErrorCode(err) == turnover.ECONFLICT:
			lost++
		default:
			t.Fatal(err)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("%d jobs got the lock and %d were refused; want one each", won, lost)
	}
	// The holder may take it again (a retried batch); after release anyone may.
	for _, job := range []string{"job-x", "job-y"} {
		if store().AcquireLock(ctx, domain, "2000", job, time.Minute) == nil {
			if err := store().ReleaseLock(ctx, domain, "2000", job); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := store().AcquireLock(ctx, domain, "2000", "job-z", time.Minute); err != nil {
		t.Errorf("after release: %v", err)
	}
	// An expired lock does not keep the user locked.
	if err := store().AcquireLock(ctx, domain, "2001", "job-old", -time.Minute); err == nil {
		if err := store().AcquireLock(ctx, domain, "2001", "job-new", time.Minute); err != nil {
			t.Errorf("an expired lock held the user: %v", err)
		}
	}
}
