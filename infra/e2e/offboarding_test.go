package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

type offboarding struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	At      string          `json:"at"`
	Users   []string        `json:"users"`
	Options map[string]bool `json:"options"`
	JobID   *string         `json:"jobId"`
}

func fire(t *testing.T, at time.Time) {
	t.Helper()
	if err := stack.FireSchedules(context.Background(), at); err != nil {
		t.Fatalf("fire schedules: %v", err)
	}
}

func getOffboarding(t *testing.T, tok, domain, id string) offboarding {
	t.Helper()
	var o offboarding
	if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/offboardings/"+id, nil, &o); status != 200 {
		t.Fatalf("get offboarding: %d", status)
	}
	return o
}

func schedule(t *testing.T, tok, domain string, users []string, at time.Time) offboarding {
	t.Helper()
	var o offboarding
	body := map[string]any{"users": users, "options": map[string]any{"deleteCustomContacts": true}, "at": at.Format(time.RFC3339)}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/offboardings", body, &o); status != http.StatusCreated || o.Status != "scheduled" {
		t.Fatalf("schedule: %d %+v", status, o)
	}
	return o
}

func TestOffboardingStartsAtItsTimeExactlyOnce(t *testing.T) {
	domain := freshDomain(t, "offb")
	tok := tokenFor(t, domain)
	// The schedule is fired below with the test's own clock, so the offboarding can be
	// a minute ahead: far enough that a slow machine still schedules it in the future.
	at := time.Now().Add(time.Minute).Truncate(time.Second)
	o := schedule(t, tok, domain, []string{"1007"}, at)

	var u struct {
		Offboarding *struct{ ID, At string }
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1007", nil, &u)
	if u.Offboarding == nil || u.Offboarding.ID != o.ID {
		t.Errorf("1007's pending offboarding = %+v, want %s", u.Offboarding, o.ID)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/offboardings", map[string]any{"users": []string{"1006", "1007"}, "at": at.Add(time.Hour).Format(time.RFC3339)}, &e); status != 422 ||
		e.Error.Message != "Extension 1007 is already in offboarding "+o.ID+", scheduled for "+at.UTC().Format(time.RFC3339)+"; cancel or move that one first." {
		t.Errorf("a second offboarding of 1007: %d %+v, want 422 naming %s and its time", status, e, o.ID)
	}
	var free struct{ Offboarding *struct{ ID string } }
	if doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1006", nil, &free); free.Offboarding != nil {
		t.Errorf("the refused offboarding marked 1006: %+v", free.Offboarding)
	}
	var preview struct{ Users []struct{ Warnings []string } }
	doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets:preview", map[string]any{"users": []string{"1007"}}, &preview)
	if len(preview.Users) != 1 || !strings.Contains(fmt.Sprint(preview.Users[0].Warnings), o.ID) {
		t.Errorf("the preview does not warn of the offboarding: %+v", preview.Users)
	}

	fire(t, at.Add(-time.Second))
	if got := getOffboarding(t, tok, domain, o.ID); got.Status != "scheduled" || got.JobID != nil {
		t.Fatalf("fired a second early: %+v", got)
	}
	before := executions(t)
	var wg sync.WaitGroup
	for range 2 { // fired twice at once: one job
		wg.Add(1)
		go func() { defer wg.Done(); fire(t, at.Add(time.Second)) }()
	}
	wg.Wait()
	fire(t, at.Add(time.Minute))
	if n := executions(t) - before; n != 1 {
		t.Errorf("%d executions started, want 1", n)
	}
	got := getOffboarding(t, tok, domain, o.ID)
	if got.JobID == nil {
		t.Fatalf("offboarding after its time = %+v", got)
	}
	if j := waitJob(t, tok, domain, *got.JobID); j.Status != "SUCCEEDED" {
		t.Errorf("job = %+v", j)
	}
	if got := getOffboarding(t, tok, domain, o.ID); got.Status != "succeeded" {
		t.Errorf("offboarding after its job = %+v, want succeeded", got)
	}
	var user struct {
		Status      string
		Offboarding *struct{ ID string }
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1007", nil, &user)
	if user.Status != "setup_required" || user.Offboarding != nil {
		t.Errorf("1007 after its offboarding = %+v", user)
	}
	if status := doIn(t, tok, "DELETE", "/v1/domains/"+domain+"/offboardings/"+o.ID, nil, &e); status != 409 {
		t.Errorf("cancel after start: %d, want 409", status)
	}
}

func TestCancelledAndMovedOffboardings(t *testing.T) {
	domain := freshDomain(t, "offc")
	tok := tokenFor(t, domain)
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	cancelled := schedule(t, tok, domain, []string{"1004"}, at)
	moved := schedule(t, tok, domain, []string{"1005"}, at)
	var o offboarding
	if status := doIn(t, tok, "DELETE", "/v1/domains/"+domain+"/offboardings/"+cancelled.ID, nil, &o); status != 200 || o.Status != "cancelled" {
		t.Fatalf("cancel: %d %+v", status, o)
	}
	if status := doIn(t, tok, "PATCH", "/v1/domains/"+domain+"/offboardings/"+moved.ID, map[string]any{"at": at.Add(time.Hour).Format(time.RFC3339)}, &o); status != 200 {
		t.Fatalf("move: %d %+v", status, o)
	}
	starts := stack.Calls()["states.StartExecution"]
	fire(t, at.Add(30*time.Minute))
	if got := getOffboarding(t, tok, domain, cancelled.ID); got.Status != "cancelled" || got.JobID != nil {
		t.Errorf("cancelled one = %+v", got)
	}
	if executionExists(t, stack, "off-"+cancelled.ID) {
		t.Errorf("the cancelled offboarding's job off-%s has an execution", cancelled.ID)
	}
	if n := stack.Calls()["states.StartExecution"] - starts; n != 0 {
		t.Errorf("%d executions started at the cancelled one's time, want none", n)
	}
	if got := getOffboarding(t, tok, domain, moved.ID); got.Status != "scheduled" {
		t.Errorf("moved one fired at its old time: %+v", got)
	}
	fire(t, at.Add(90*time.Minute))
	got := getOffboarding(t, tok, domain, moved.ID)
	if got.JobID == nil {
		t.Fatalf("moved one did not fire at its new time: %+v", got)
	}
	waitJob(t, tok, domain, *got.JobID)
	if got := getOffboarding(t, tok, domain, cancelled.ID); got.Status != "cancelled" || got.JobID != nil || executionExists(t, stack, "off-"+cancelled.ID) {
		t.Errorf("after a later firing the cancelled one = %+v or has an execution", got)
	}
	var e404 struct{ Error struct{ Code string } }
	if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/resets/off-"+cancelled.ID, nil, &e404); status != 404 {
		t.Errorf("the cancelled one's job: %d %+v, want 404", status, e404)
	}
	var list struct{ Offboardings []offboarding }
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/offboardings?status=cancelled", nil, &list)
	if len(list.Offboardings) != 1 || list.Offboardings[0].ID != cancelled.ID {
		t.Errorf("cancelled list = %+v", list.Offboardings)
	}
	var e struct{ Error struct{ Code string } }
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/offboardings", map[string]any{"users": []string{"1004"}, "at": time.Now().Add(-time.Minute).Format(time.RFC3339)}, &e); status != 422 {
		t.Errorf("an offboarding in the past: %d", status)
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/offboardings", map[string]any{"users": []string{"1004"}, "at": time.Now().Add(400 * 24 * time.Hour).Format(time.RFC3339)}, &e); status != 422 {
		t.Errorf("an offboarding over a year ahead: %d", status)
	}
	// 1004 is free again after the cancel.
	schedule(t, tok, domain, []string{"1004"}, at)
}

func TestOffboardingImport(t *testing.T) {
	domain := freshDomain(t, "offi")
	tok := tokenFor(t, domain)
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second).UTC()
	want := at.Format(time.RFC3339)
	east := at.In(time.FixedZone("EST", -5*3600)).Format(time.RFC3339) // the same time
	csv := strings.Join([]string{
		"extension,at,firstName,lastName,email,department",
		"1007," + east + ",Ann,Lee,ann.lee@example.com,Sales", // 2
		"10x7," + want,                                        // 3
		"1004,2020-01-01T00:00:00Z",                           // 4
		"4242," + want,                                        // 5
		"1005," + want + ",Bo,,not-an-email,",                 // 6
		"1001," + want,                                        // 7
		"1007," + at.Add(time.Hour).Format(time.RFC3339),      // 8: 1007 is in line 2's offboarding
		"1002," + want + ",Kay,Lee,kay@example.com,Ops,extra", // 9
	}, "\n") + "\n"
	req, _ := http.NewRequest("POST", stack.APIURL+"/v1/domains/"+domain+"/offboardings:import?options=deleteVoicemailMessages&sendWelcomeEmail=true", strings.NewReader(csv))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Idempotency-Key", "import-"+domain)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Scheduled []offboarding
		Errors    []struct {
			Line   int
			Reason string
		}
	}
	if err := jsonDecode(resp, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("import: %d %v", resp.StatusCode, err)
	}

	var scheduled []string
	for _, o := range out.Scheduled {
		scheduled = append(scheduled, fmt.Sprintf("%v %s %s recycle=%v vm=%v", o.Users, o.At, o.Status, o.Options["recycle"], o.Options["deleteVoicemailMessages"]))
	}
	wantScheduled := []string{
		fmt.Sprintf("[1007] %s scheduled recycle=true vm=true", want),
		fmt.Sprintf("[1001] %s scheduled recycle=false vm=true", want),
	}
	if fmt.Sprint(scheduled) != fmt.Sprint(wantScheduled) {
		t.Errorf("scheduled:\n%s\nwant:\n%s", strings.Join(scheduled, "\n"), strings.Join(wantScheduled, "\n"))
	}
	if len(out.Scheduled) != 2 {
		t.Fatalf("scheduled %d offboardings, want 2", len(out.Scheduled))
	}
	var reasons []string
	for _, e := range out.Errors {
		reasons = append(reasons, fmt.Sprintf("%d: %s", e.Line, e.Reason))
	}
	wantReasons := []string{
		`3: "10x7" is not an extension: use 2 to 10 digits.`,
		"4: at must be in the future.",
		"5: Domain " + domain + " has no extension 4242; nothing was scheduled.",
		"6: lastName is required.",
		"8: Extension 1007 is already in offboarding " + out.Scheduled[0].ID + ", scheduled for " + want + "; cancel or move that one first.",
		"9: The row has 7 fields but the header names 6 columns.",
	}
	if fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(wantReasons, "\n"))
	}

	// Each scheduled user shows its offboarding; a refused one shows none.
	for ext, id := range map[string]string{"1007": out.Scheduled[0].ID, "1001": out.Scheduled[1].ID, "1002": "", "1005": ""} {
		var u struct {
			Offboarding *struct{ ID, At string }
		}
		if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/"+ext, nil, &u); status != 200 {
			t.Fatalf("get %s: %d", ext, status)
		}
		switch {
		case id == "" && u.Offboarding != nil:
			t.Errorf("%s is in offboarding %+v, want none", ext, u.Offboarding)
		case id != "" && (u.Offboarding == nil || u.Offboarding.ID != id || u.Offboarding.At != want):
			t.Errorf("%s is in offboarding %+v, want %s at %s", ext, u.Offboarding, id, want)
		}
	}
}

// executions counts the reset state machine's executions.
func executions(t *testing.T) int {
	t.Helper()
	n := 0
	p := sfn.NewListExecutionsPaginator(sfn.NewFromConfig(stack.AWS), &sfn.ListExecutionsInput{StateMachineArn: aws.String(stack.Resources.StateMachines["ResetStateMachine"])})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Executions {
			if !strings.Contains(aws.ToString(e.ExecutionArn), "/") { // parents only, not Map children
				n++
			}
		}
	}
	return n
}
