package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/demo"
)

// startTickingStack starts a second local stack, like TestMain's but with its schedule
// firing by itself every tick, as make dev does, and stops it when the test ends.
func startTickingStack(t *testing.T, tick time.Duration) *localstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		FunctionLogs:  functionLogs,
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		ScheduleTick:  tick,
		Functions:     app.Functions,
		Seed: func(ctx context.Context, cfg aws.Config, res localstack.Resources) error {
			return demo.Seed(ctx, cfg, res.Tables["Table"], res.Buckets["Bucket"])
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("start a second local stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop the second local stack: %v", err)
		}
	})
	return s
}

// retarget sends each request to another stack's HTTP API.
type retarget struct {
	to   *url.URL
	next http.RoundTripper
}

func (r retarget) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = r.to.Scheme, r.to.Host, ""
	return r.next.RoundTrip(req)
}

// doOn is doIn against another stack s: one request to s's HTTP API, checked against
// openapi.yaml (whose server is TestMain's stack, so the request is addressed there
// and retargeted after the check), its JSON answer decoded into out.
func doOn(t *testing.T, s *localstack.Stack, tok, method, path string, body, out any) int {
	t.Helper()
	to, err := url.Parse(s.APIURL)
	if err != nil {
		t.Fatal(err)
	}
	key := ""
	if method == "POST" || method == "PATCH" {
		key = rand.Text()
	}
	client := &http.Client{Transport: specChecker{t: t, next: retarget{to: to, next: http.DefaultTransport}}}
	resp, raw := sendVia(t, client, tok, method, path, key, body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// executionExists reports whether the reset state machine of s has an execution named
// jobID, the name every job's execution takes.
func executionExists(t *testing.T, s *localstack.Stack, jobID string) bool {
	t.Helper()
	arn := strings.Replace(s.Resources.StateMachines["ResetStateMachine"], ":stateMachine:", ":execution:", 1) + ":" + jobID
	_, err := sfn.NewFromConfig(s.AWS).DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var missing *sfntypes.ExecutionDoesNotExist
	switch {
	case errors.As(err, &missing):
		return false
	case err != nil:
		t.Fatalf("describe execution %s: %v", jobID, err)
	}
	return true
}

// TestScheduleStartsOffboardingsByItself: on a stack whose schedule really ticks, an
// offboarding a few seconds ahead starts on its own and completes, and one cancelled
// before its time never starts. Nothing here fires the schedule by hand.
func TestScheduleStartsOffboardingsByItself(t *testing.T) {
	s := startTickingStack(t, time.Second)
	const domain = "niftywidgets"
	tok, err := s.Token(localstack.TokenClaims{Subject: "1003@" + domain, Domain: domain, Scope: "office_manager"})
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1/domains/" + domain + "/offboardings"
	schedule := func(ext string, at time.Time) offboarding {
		t.Helper()
		var o offboarding
		body := map[string]any{"users": []string{ext}, "options": map[string]any{"deleteCustomContacts": true}, "at": at.Format(time.RFC3339)}
		if status := doOn(t, s, tok, "POST", base, body, &o); status != http.StatusCreated || o.Status != "scheduled" {
			t.Fatalf("schedule %s: %d %+v", ext, status, o)
		}
		return o
	}
	get := func(id string) offboarding {
		t.Helper()
		var o offboarding
		if status := doOn(t, s, tok, "GET", base+"/"+id, nil, &o); status != http.StatusOK {
			t.Fatalf("get offboarding %s: %d", id, status)
		}
		return o
	}

	// Whole seconds, as the API keeps them, 3 to 4 s ahead; the cancelled one is due a
	// second later, so the ticks that start the first would start it too.
	at := time.Now().Truncate(time.Second).Add(4 * time.Second)
	due := schedule("1007", at)
	cancelled := schedule("1005", at.Add(time.Second))
	var o offboarding
	if status := doOn(t, s, tok, "DELETE", base+"/"+cancelled.ID, nil, &o); status != http.StatusOK || o.Status != "cancelled" {
		t.Fatalf("cancel: %d %+v", status, o)
	}
	if time.Now().After(at) {
		t.Fatalf("scheduling took past %s; the test proves nothing", at.Format(time.RFC3339))
	}
	if got := get(due.ID); got.Status != "scheduled" || got.JobID != nil {
		t.Fatalf("before its time the offboarding is %+v, want scheduled with no job", got)
	}

	deadline := at.Add(15 * time.Second)
	var got offboarding
	for {
		got = get(due.ID)
		if got.Status == "succeeded" || got.Status == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after its time the offboarding is %+v, want succeeded", got)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got.Status != "succeeded" || got.JobID == nil || *got.JobID != "off-"+due.ID {
		t.Fatalf("offboarding = %+v, want succeeded with job off-%s", got, due.ID)
	}
	var u struct {
		Status      string
		Offboarding *struct{ ID string }
	}
	if status := doOn(t, s, tok, "GET", "/v1/domains/"+domain+"/users/1007", nil, &u); status != http.StatusOK || u.Status != "setup_required" || u.Offboarding != nil {
		t.Errorf("1007 after its offboarding: %d %+v, want setup_required with no offboarding", status, u)
	}

	// Let a tick pass the cancelled one's time for certain before looking at it.
	if wait := time.Until(cancelled.atTime(t).Add(2 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	if got := get(cancelled.ID); got.Status != "cancelled" || got.JobID != nil {
		t.Errorf("cancelled offboarding after its time = %+v, want cancelled with no job", got)
	}
	if executionExists(t, s, "off-"+cancelled.ID) {
		t.Errorf("the cancelled offboarding's job off-%s has an execution", cancelled.ID)
	}
	var e struct{ Error struct{ Code string } }
	if status := doOn(t, s, tok, "GET", "/v1/domains/"+domain+"/resets/off-"+cancelled.ID, nil, &e); status != http.StatusNotFound {
		t.Errorf("the cancelled offboarding's job: %d %+v, want 404", status, e)
	}
	if !executionExists(t, s, "off-"+due.ID) {
		t.Errorf("the offboarding's job off-%s has no execution", due.ID)
	}
	if n := s.Calls()["states.StartExecution"]; n != 1 {
		t.Errorf("%d StartExecution calls crossed the front door, want 1: the due offboarding's job alone", n)
	}
}

// atTime is the offboarding's time.
func (o offboarding) atTime(t *testing.T) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, o.At)
	if err != nil {
		t.Fatalf("offboarding %s at %q: %v", o.ID, o.At, err)
	}
	return at
}
