// Package e2e_test drives turnover end to end on the local stack: real HTTP requests
// with real JWTs, the real api, reset and finalize handlers, the real state machine run
// by moto, and the real AWS SDK against moto's DynamoDB and S3.
package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/demo"
	"turnover/internal/dynamo"
	"turnover/internal/turnover"
)

var stack *localstack.Stack

// slowCommits, while set, delays every DynamoDB transaction through the front door.
var slowCommits atomic.Bool

// functionLogs is the file every function's log lines go to, one JSON object a line, as
// Lambda writes them to CloudWatch Logs.
var functionLogs *os.File

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var err error
	if functionLogs, err = os.CreateTemp("", "turnover-e2e-functions-*.log"); err != nil {
		fmt.Fprintln(os.Stderr, "function log file:", err)
		os.Exit(1)
	}
	stack, err = localstack.Start(ctx, localstack.Options{
		FunctionLogs:  functionLogs,
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		ScheduleTick:  -1, // the tests fire schedules themselves, with their own clock
		Functions:     app.Functions,
		Seed: func(ctx context.Context, cfg aws.Config, res localstack.Resources) error {
			return demo.Seed(ctx, cfg, res.Tables["Table"], res.Buckets["Bucket"])
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Faults: localstack.FaultFunc(func(c localstack.Call) *localstack.Fault {
			if slowCommits.Load() && c.Service == "dynamodb" && c.Operation == "TransactWriteItems" {
				return &localstack.Fault{Delay: 1500 * time.Millisecond}
			}
			return nil
		}),
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local stack:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := stack.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stop local stack:", err)
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "the functions' logs are in", functionLogs.Name())
	} else {
		os.Remove(functionLogs.Name())
	}
	os.Exit(code)
}

// tokenFor is the office manager's token of a domain.
func tokenFor(t *testing.T, domain string) string { return token(t, domain, "office_manager") }

func token(t *testing.T, domain, scope string) string {
	t.Helper()
	tok, err := stack.Token(localstack.TokenClaims{Subject: "1003@" + domain, Domain: domain, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// doIn sends one request to the local HTTP API and decodes its JSON answer into out.
// POSTs that change things carry a fresh Idempotency-Key.
func doIn(t *testing.T, tok, method, path string, body any, out any) int {
	t.Helper()
	key := ""
	if (method == "POST" || method == "PATCH") && !strings.HasSuffix(path, ":preview") {
		key = rand.Text()
	}
	return doWithKey(t, tok, method, path, key, body, out)
}

// doWithKey is doIn with a chosen Idempotency-Key ("" for none).
func doWithKey(t *testing.T, tok, method, path, key string, body any, out any) int {
	t.Helper()
	resp, raw := send(t, tok, method, path, key, body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// send sends one request to the local HTTP API through apiClient, which checks it and
// its answer against openapi.yaml, and returns the answer with its body read.
func send(t *testing.T, tok, method, path, key string, body any) (*http.Response, []byte) {
	t.Helper()
	return sendVia(t, apiClient(t), tok, method, path, key, body)
}

// sendVia is send through another client.
func sendVia(t *testing.T, client *http.Client, tok, method, path, key string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, stack.APIURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

// answer is a response of the local HTTP API with its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// sendRaw sends body as it is (nil for none), of contentType ("" for none), through
// apiClient, with an Idempotency-Key when key is not "". Unlike send it may be called
// from any goroutine: a request that cannot be sent is reported with t.Error and
// answered with status 0.
func sendRaw(t *testing.T, tok, method, path, contentType, key string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, stack.APIURL+path, rd)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: read the answer: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, raw}
}

type user struct {
	Extension, FirstName, LastName, Email, Department, Scope, Status, Login string
}

type job struct {
	JobID   string `json:"jobId"`
	Status  string `json:"status"`
	Total   int    `json:"total"`
	Done    int    `json:"done"`
	Failed  int    `json:"failed"`
	Percent int    `json:"percent"`
	Users   []struct {
		Extension string         `json:"extension"`
		Status    string         `json:"status"`
		Deleted   map[string]int `json:"deleted"`
		Error     *string        `json:"error"`
	} `json:"users"`
}

// runReset starts a reset job in niftywidgets and waits for it to finish.
func runReset(t *testing.T, tok string, body map[string]any) job {
	t.Helper()
	return runResetIn(t, tok, "niftywidgets", body)
}

// runResetIn starts a reset job in domain and waits for it to finish.
func runResetIn(t *testing.T, tok, domain string, body map[string]any) job {
	t.Helper()
	var started job
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets", body, &started); status != http.StatusAccepted {
		t.Fatalf("start reset: status %d, %+v", status, started)
	}
	if started.Status != "RUNNING" || started.JobID == "" {
		t.Fatalf("started job = %+v", started)
	}
	return waitJob(t, tok, domain, started.JobID)
}

// waitJob polls a job until it has finished.
func waitJob(t *testing.T, tok, domain, jobID string) job {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var j job
		if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/resets/"+jobID, nil, &j); status != 200 {
			t.Fatalf("get job: status %d", status)
		}
		if j.Status != "RUNNING" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still running after 90 s: %+v", jobID, j)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func store() *dynamo.Store {
	return dynamo.New(dynamodb.NewFromConfig(stack.AWS), stack.Resources.Tables["Table"])
}

func TestListsTheDemoUsers(t *testing.T) {
	var body struct {
		Users      []user  `json:"users"`
		NextCursor *string `json:"nextCursor"`
	}
	if status := doIn(t, token(t, "niftywidgets", "office_manager"), "GET", "/v1/domains/niftywidgets/users", nil, &body); status != 200 {
		t.Fatalf("status %d", status)
	}
	if len(body.Users) != 9 || body.NextCursor != nil {
		t.Fatalf("got %d users (next %v), want the 9 demo users", len(body.Users), body.NextCursor)
	}
	want := map[string]string{"1000": "Inara Serra active", "1003": "Jayne Cobb password_required", "1006": "Zoe Washburne setup_required"}
	for _, u := range body.Users {
		if w, ok := want[u.Extension]; ok && u.FirstName+" "+u.LastName+" "+u.Status != w {
			t.Errorf("%s = %s %s %s, want %s", u.Extension, u.FirstName, u.LastName, u.Status, w)
		}
		if u.Login != u.Extension+"@niftywidgets" {
			t.Errorf("login = %q", u.Login)
		}
	}
}

func TestTokensAreChecked(t *testing.T) {
	good := token(t, "niftywidgets", "office_manager")
	expired, err := stack.Token(localstack.TokenClaims{Subject: "1003@niftywidgets", Domain: "niftywidgets", Scope: "office_manager", ExpiresAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"none": "", "garbage": "not.a.jwt", "expired": expired,
		"tampered": good[:len(good)-4] + strings.Repeat("A", 4),
	} {
		if status := doIn(t, tok, "GET", "/v1/domains/niftywidgets/users", nil, nil); status != http.StatusUnauthorized {
			t.Errorf("%s token: status %d, want 401", name, status)
		}
	}
}

func TestAnotherDomainsTokenChangesNothing(t *testing.T) {
	before, _, err := store().LoadUserData(context.Background(), "niftywidgets", "1002")
	if err != nil {
		t.Fatal(err)
	}
	other := token(t, "serenityvalley", "office_manager")
	var e struct {
		Error struct{ Code, Message string }
	}
	if status := doIn(t, other, "POST", "/v1/domains/niftywidgets/resets", map[string]any{"users": []string{"1002"}, "options": map[string]any{}, "confirm": true}, &e); status != 403 || e.Error.Code != "forbidden" {
		t.Fatalf("reset with another domain's token: %d %+v, want 403 forbidden", status, e)
	}
	if status := doIn(t, other, "GET", "/v1/domains/niftywidgets/users", nil, nil); status != 403 {
		t.Errorf("list with another domain's token: %d, want 403", status)
	}
	after, _, err := store().LoadUserData(context.Background(), "niftywidgets", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if after.User != before.User || len(after.Devices) != len(before.Devices) {
		t.Errorf("1002 changed: %+v -> %+v", before.User, after.User)
	}
}

func TestResetOneUserEndToEnd(t *testing.T) {
	ctx := context.Background()
	tok := token(t, "niftywidgets", "office_manager")
	calls := stack.Calls()

	j := runReset(t, tok, map[string]any{"users": []string{"1009"}, "options": map[string]any{}, "confirm": true})
	if j.Status != "SUCCEEDED" || j.Total != 1 || j.Done != 1 || j.Failed != 0 || j.Percent != 100 {
		t.Fatalf("job = %+v, want SUCCEEDED 1/1", j)
	}
	if len(j.Users) != 1 || j.Users[0].Extension != "1009" || j.Users[0].Status != "reset" || j.Users[0].Error != nil {
		t.Fatalf("results = %+v", j.Users)
	}
	if d := j.Users[0].Deleted; len(d) != 0 {
		t.Errorf("deleted = %v, want no option counts when no option was selected", d)
	}

	var u user
	if status := doIn(t, tok, "GET", "/v1/domains/niftywidgets/users/1009", nil, &u); status != 200 {
		t.Fatalf("get 1009: %d", status)
	}
	if u.Status != "setup_required" || u.FirstName != "" || u.LastName != "" || u.Email != "" || u.Extension != "1009" {
		t.Errorf("1009 after reset = %+v, want setup_required with no name or email", u)
	}

	data, _, err := store().LoadUserData(ctx, "niftywidgets", "1009")
	if err != nil {
		t.Fatal(err)
	}
	if data.User.PasswordHash != "" || data.User.VoicemailPINHash != "" {
		t.Errorf("password or PIN survived the reset")
	}
	kinds := map[string]int{}
	for _, d := range data.Devices {
		kinds[d.Kind]++
	}
	if kinds[turnover.DeviceSoftPhone] != 0 || kinds[turnover.DeviceDesk] != 1 || kinds[turnover.DeviceMobileApp] != 1 {
		t.Errorf("devices after reset = %v, want desk and mobile kept, soft phone gone", kinds)
	}
	if len(data.Voicemail) != 5 || len(data.Greetings) != 3 || len(data.Rules) != 3 || len(data.Contacts) != 2 || len(data.Numbers) != 1 {
		t.Errorf("unselected data changed: %d messages, %d greetings, %d rules, %d contacts, %d numbers",
			len(data.Voicemail), len(data.Greetings), len(data.Rules), len(data.Contacts), len(data.Numbers))
	}

	var dir struct{ Entries []struct{ Extension string } }
	if status := doIn(t, tok, "GET", "/v1/domains/niftywidgets/directory?digits=7396", nil, &dir); status != 200 {
		t.Fatalf("directory: %d", status)
	}
	for _, e := range dir.Entries {
		if e.Extension == "1009" {
			t.Errorf("1009 is still in the directory")
		}
	}

	after := stack.Calls()
	for _, op := range []string{"states.StartExecution", "lambda.Invoke", "s3.GetObject", "dynamodb.TransactWriteItems"} {
		if after[op] <= calls[op] {
			t.Errorf("no %s crossed the front door during the job (%d before, %d after)", op, calls[op], after[op])
		}
	}
}

func TestTenIdenticalStartsMakeOneJob(t *testing.T) {
	domain := freshDomain(t, "idem")
	tok := tokenFor(t, domain)
	body := map[string]any{"users": []string{"1009"}, "options": map[string]any{}, "confirm": true}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	before := stack.Calls()["states.StartExecution"]
	answers := make(chan answer, 10)
	for range 10 {
		go func() {
			answers <- sendRaw(t, tok, "POST", "/v1/domains/"+domain+"/resets", "application/json", "same-key", raw)
		}()
	}
	// Every one of the ten gets the first one's answer: the same status and, byte for
	// byte, the same body.
	first := <-answers
	for range 9 {
		if a := <-answers; a.status != first.status || !bytes.Equal(a.body, first.body) {
			t.Errorf("ten identical starts answered differently:\n  %d %s\n  %d %s", first.status, first.body, a.status, a.body)
		}
	}
	var j job
	if err := json.Unmarshal(first.body, &j); first.status != http.StatusAccepted || err != nil || j.JobID == "" {
		t.Fatalf("ten identical starts: %d %s, want 202 with a job", first.status, first.body)
	}
	seen := map[string]bool{j.JobID: true}
	if n := stack.Calls()["states.StartExecution"] - before; n != 1 {
		t.Errorf("%d executions started, want 1", n)
	}
	var e struct{ Error struct{ Code string } }
	body["users"] = []string{"1002"}
	if status := doWithKey(t, tok, "POST", "/v1/domains/"+domain+"/resets", "same-key", body, &e); status != 422 {
		t.Errorf("same key, other body: %d %+v, want 422", status, e)
	}
	if status := doWithKey(t, tok, "POST", "/v1/domains/"+domain+"/resets", "", body, &e); status != 400 {
		t.Errorf("no key: %d, want 400", status)
	}
	for id := range seen {
		if j := waitJob(t, tok, domain, id); j.Status != "SUCCEEDED" {
			t.Errorf("job = %+v", j)
		}
	}
}

func jsonDecode(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}
