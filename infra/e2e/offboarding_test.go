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
	ID     string  `json:"id"`
	Status string  `json:"status"`
	At     string  `json:"at"`
	JobID  *string `json:"jobId"`
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
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/offboardings", map[string]any{"users": []string{"1007"}, "at": at.Add(time.Hour).Format(time.RFC3339)}, &e); status != 422 {
		t.Errorf("a second offboarding of 1007: %d %+v, want 422", status, e)
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
	fire(t, at.Add(30*time.Minute))
	if got := getOffboarding(t, tok, domain, cancelled.ID); got.Status != "cancelled" || got.JobID != nil {
		t.Errorf("cancelled one = %+v", got)
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
	at := time.Now().Add(2 * time.Hour).Format(time.RFC3339)
	csv := strings.Join([]string{
		"extension,at,firstName,lastName,email,department",
		"1007," + at + ",Ann,Lee,ann.lee@example.com,Sales",
		"10x7," + at,
		"1004,2020-01-01T00:00:00Z",
		"4242," + at,
		"1005," + at + ",Bo,,not-an-email,",
		"1001," + at,
	}, "\n") + "\n"
	req, _ := http.NewRequest("POST", stack.APIURL+"/v1/domains/"+domain+"/offboardings:import?options=deleteVoicemailMessages", strings.NewReader(csv))
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
	if len(out.Scheduled) != 2 {
		t.Errorf("scheduled %d, want the 2 good rows", len(out.Scheduled))
	}
	var lines []int
	for _, e := range out.Errors {
		lines = append(lines, e.Line)
		if e.Reason == "" {
			t.Errorf("line %d has no reason", e.Line)
		}
	}
	if fmt.Sprint(lines) != "[3 4 5 6]" {
		t.Errorf("bad lines = %v (%+v), want [3 4 5 6]", lines, out.Errors)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1001", nil, &u)
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
