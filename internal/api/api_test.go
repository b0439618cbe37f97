package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"turnover/internal/api"
	"turnover/internal/demo"
	"turnover/internal/turnover"
)

// fake is an in-memory store, manifest writer and execution starter.
type fake struct {
	mu         sync.Mutex
	users      map[string]turnover.User // domain/ext
	jobs       map[string]turnover.Job
	results    map[string][]turnover.UserResult
	manifests  map[string][]turnover.Batch
	recycle    map[string][]turnover.NewIdentity
	running    []string
	idem       map[string]*turnover.IdempotencyRecord
	executions []turnover.ExecutionInput
	puts       int // manifests and recycle rows written
	calls      int
	fail       error
	startErr   error // what StartJob answers

	// What the accounts, offboardings and setup-link stores and the mailer were asked to
	// write (fakes_test.go), so a test can tell whether a request changed anything.
	identities   map[string]turnover.NewIdentity // domain/ext
	forced       []string                        // domain/ext
	offboardings map[string]turnover.Offboarding // domain/id
	links        map[string]turnover.SetupLink   // domain/ext
	active       map[string][2]string            // domain/ext -> password and PIN hashes
	failures     map[string]int                  // username
	markers      map[string]bool                 // domain/scope/ext
	mail         []turnover.MailRequest          // queued setup-link mail
}

func newFake() *fake {
	f := &fake{users: map[string]turnover.User{}, jobs: map[string]turnover.Job{}, results: map[string][]turnover.UserResult{}, manifests: map[string][]turnover.Batch{}, recycle: map[string][]turnover.NewIdentity{}, idem: map[string]*turnover.IdempotencyRecord{},
		identities: map[string]turnover.NewIdentity{}, offboardings: map[string]turnover.Offboarding{}, links: map[string]turnover.SetupLink{}, active: map[string][2]string{}, failures: map[string]int{}, markers: map[string]bool{}}
	for _, u := range []turnover.User{
		{Domain: "niftywidgets", Extension: "1002", FirstName: "Kaylee", LastName: "Frye", Email: "kaylee@example.com", Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive},
		{Domain: "niftywidgets", Extension: "1003", FirstName: "Jayne", LastName: "Cobb", Scope: turnover.ScopeOfficeManager, Status: turnover.StatusPasswordRequired},
		{Domain: "niftywidgets", Extension: "1009", FirstName: "Malcom", LastName: "Reynolds", Scope: turnover.ScopeBasicUser, Status: turnover.StatusPasswordRequired},
		{Domain: "other", Extension: "2000", FirstName: "Other", LastName: "Person", Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive},
	} {
		f.users[u.Domain+"/"+u.Extension] = u
	}
	return f
}

func (f *fake) touch() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.fail
}

func (f *fake) ListUsers(_ context.Context, domain string, _ turnover.UserFilter) ([]turnover.User, string, error) {
	if err := f.touch(); err != nil {
		return nil, "", err
	}
	var out []turnover.User
	for _, ext := range []string{"1002", "1003", "1009", "2000"} {
		if u, ok := f.users[domain+"/"+ext]; ok {
			out = append(out, u)
		}
	}
	return out, "", nil
}

func (f *fake) GetUser(_ context.Context, domain, ext string) (turnover.User, error) {
	if err := f.touch(); err != nil {
		return turnover.User{}, err
	}
	u, ok := f.users[domain+"/"+ext]
	if !ok {
		return u, turnover.Errorf(turnover.ENOTFOUND, "no %s", ext)
	}
	return u, nil
}

func (f *fake) GetUsers(_ context.Context, domain string, exts []string) (map[string]turnover.User, error) {
	if err := f.touch(); err != nil {
		return nil, err
	}
	out := map[string]turnover.User{}
	for _, ext := range exts {
		if u, ok := f.users[domain+"/"+ext]; ok {
			out[ext] = u
		}
	}
	return out, nil
}

func (f *fake) LoadUserData(_ context.Context, domain, ext string) (turnover.UserData, string, error) {
	if err := f.touch(); err != nil {
		return turnover.UserData{}, "", err
	}
	u, ok := f.users[domain+"/"+ext]
	if !ok {
		return turnover.UserData{}, "", turnover.Errorf(turnover.ENOTFOUND, "no %s", ext)
	}
	d := demo.Users()[0]
	d.User = u
	return d, "", nil
}

func (f *fake) PutRecycleRows(_ context.Context, domain, jobID string, rows []turnover.NewIdentity) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recycle[domain+"/"+jobID] = rows
	f.puts++
	return nil
}

func (f *fake) RunningJobs(context.Context, string) ([]string, error) { return f.running, f.touch() }

func (f *fake) GetManifest(_ context.Context, domain, jobID string) ([]turnover.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.manifests[domain+"/"+jobID], nil
}

func (f *fake) ClaimIdempotencyKey(_ context.Context, domain, key, hash string, _ time.Duration) (*turnover.IdempotencyRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.idem[domain+"/"+key]; ok {
		c := *r
		return &c, nil
	}
	f.idem[domain+"/"+key] = &turnover.IdempotencyRecord{RequestHash: hash}
	return nil, nil
}

func (f *fake) CompleteIdempotencyKey(_ context.Context, domain, key string, status int, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.idem[domain+"/"+key]
	r.Complete, r.Status, r.Body = true, status, body
	return nil
}

func (f *fake) FailIdempotencyKey(_ context.Context, domain, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.idem, domain+"/"+key) // enough here: the tests replay only completed keys
	return nil
}

func (f *fake) ReleaseIdempotencyKey(_ context.Context, domain, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.idem[domain+"/"+key]; r != nil && !r.Complete {
		delete(f.idem, domain+"/"+key)
	}
	return nil
}

func (f *fake) LookupDirectory(context.Context, string, string) ([]turnover.DirectoryEntry, error) {
	return nil, f.touch()
}

func (f *fake) ListNumbers(context.Context, string) ([]turnover.PhoneNumber, error) {
	return []turnover.PhoneNumber{{Number: "+15555550109", Extension: "1009"}, {Number: "+15555550190"}}, f.touch()
}

// CreateJob creates a job only if it does not exist, as the store's condition does.
func (f *fake) CreateJob(_ context.Context, j turnover.Job) error {
	if err := f.touch(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[j.Domain+"/"+j.ID]; ok {
		return turnover.Errorf(turnover.ECONFLICT, "Job %s exists already.", j.ID)
	}
	f.jobs[j.Domain+"/"+j.ID] = j
	return nil
}

func (f *fake) GetJob(_ context.Context, domain, id string) (turnover.Job, error) {
	if err := f.touch(); err != nil {
		return turnover.Job{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[domain+"/"+id]
	if !ok {
		return j, turnover.Errorf(turnover.ENOTFOUND, "no job")
	}
	return j, nil
}

func (f *fake) ListResults(_ context.Context, domain, id string) ([]turnover.UserResult, error) {
	return f.results[domain+"/"+id], f.touch()
}

func (f *fake) GetResults(_ context.Context, domain, id string, exts []string) (map[string]turnover.UserResult, error) {
	out := map[string]turnover.UserResult{}
	for _, r := range f.results[domain+"/"+id] {
		if slices.Contains(exts, r.Extension) {
			out[r.Extension] = r
		}
	}
	return out, f.touch()
}

func (f *fake) GetRecycleRows(_ context.Context, domain, id string) ([]turnover.NewIdentity, error) {
	return f.recycle[domain+"/"+id], f.touch()
}

func (f *fake) PutManifest(_ context.Context, domain, jobID string, b []turnover.Batch) (turnover.ManifestLocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.manifests[domain+"/"+jobID] = b
	f.puts++
	return turnover.ManifestLocation{Bucket: "bucket", Key: "jobs/" + domain + "/" + jobID + "/manifest.json"}, nil
}

func (f *fake) StartJob(_ context.Context, in turnover.ExecutionInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.executions = append(f.executions, in)
	return nil
}

// call sends one API Gateway HTTP API event, built from the fixture, through the same
// adapter the api function uses.
// POSTs to resets get an Idempotency-Key unless headers say otherwise ("" drops it).
func call(t *testing.T, f *fake, method, path, body string, claims map[string]string, headers ...string) (int, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("testdata/list-users.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	p, q, _ := strings.Cut(path, "?")
	ev.RawPath, ev.RawQueryString = p, q
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, p
	ev.Body = body
	ev.Headers = maps.Clone(ev.Headers)
	if method == "POST" && strings.HasSuffix(path, "/resets") {
		ev.Headers["idempotency-key"] = fmt.Sprintf("key-%x", sha256.Sum256([]byte(body)))
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			delete(ev.Headers, headers[i])
		} else {
			ev.Headers[headers[i]] = headers[i+1]
		}
	}
	if claims == nil {
		ev.RequestContext.Authorizer = nil
	} else {
		ev.RequestContext.Authorizer.JWT.Claims = claims
	}
	srv := &api.Server{
		Users: f, Jobs: f, Manifests: f, Executions: f, Idempotency: f, BatchSize: 2,
		Log:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		NewJobID: func(string, string) string { return "job1" },
		Now:      func() time.Time { return time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC) },
	}
	resp, err := httpadapter.NewV2(srv.Handler()).ProxyWithContext(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, resp.Body, err)
	}
	return resp.StatusCode, out
}

func manager(domain string) map[string]string {
	return map[string]string{"sub": "1003@" + domain, "domain": domain, "scope": "office_manager"}
}

func errorCode(t *testing.T, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok || e["message"] == "" {
		t.Fatalf("body %v is not an error", body)
	}
	return e["code"].(string)
}

func TestListUsers(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "GET", "/v1/domains/niftywidgets/users", "", manager("niftywidgets"))
	if status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, body)
	}
	users := body["users"].([]any)
	if got, want := len(users), 3; got != want {
		t.Fatalf("got %d users, want %d", got, want)
	}
	first := users[0].(map[string]any)
	if first["extension"] != "1002" || first["login"] != "1002@niftywidgets" || first["status"] != "active" || first["firstName"] != "Kaylee" {
		t.Errorf("first user = %v", first)
	}
	if body["nextCursor"] != nil {
		t.Errorf("nextCursor = %v, want null", body["nextCursor"])
	}
}

func TestAuthorization(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]string
		path   string
		want   int
	}{
		{"no identity", nil, "/v1/domains/niftywidgets/users", 401},
		{"other domain", manager("other"), "/v1/domains/niftywidgets/users", 403},
		{"basic user", map[string]string{"sub": "1002@niftywidgets", "domain": "niftywidgets", "scope": "basic_user"}, "/v1/domains/niftywidgets/users", 403},
		{"supervisor", map[string]string{"sub": "1000@niftywidgets", "domain": "niftywidgets", "scope": "call_center_supervisor"}, "/v1/domains/niftywidgets/users/1002", 403},
		{"reseller of domain", map[string]string{"sub": "r@resell", "domain": "resell", "scope": "reseller", "domains": "[other niftywidgets]"}, "/v1/domains/niftywidgets/users", 200},
		{"reseller elsewhere", map[string]string{"sub": "r@resell", "domain": "resell", "scope": "reseller", "domains": "[other]"}, "/v1/domains/niftywidgets/users", 403},
		{"super user", map[string]string{"sub": "root@x", "domain": "x", "scope": "super_user"}, "/v1/domains/niftywidgets/users/1002", 200},
		{"own domain user", manager("niftywidgets"), "/v1/domains/niftywidgets/users/1009", 200},
		{"bad domain", manager("niftywidgets"), "/v1/domains/NIFTY%23x/users", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			status, body := call(t, f, "GET", tt.path, "", tt.claims)
			if status != tt.want {
				t.Fatalf("status = %d, want %d (%v)", status, tt.want, body)
			}
			if status >= 400 {
				errorCode(t, body)
				if f.calls != 0 {
					t.Errorf("refused request still read the store %d times", f.calls)
				}
			}
		})
	}
}

func TestForbiddenResetChangesNothing(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "POST", "/v1/domains/other/resets", `{"users":["2000"],"options":{},"confirm":true}`, manager("niftywidgets"))
	if status != 403 || errorCode(t, body) != "forbidden" {
		t.Fatalf("status %d body %v", status, body)
	}
	if len(f.jobs)+len(f.executions)+len(f.manifests) != 0 {
		t.Errorf("a forbidden reset wrote something: %d jobs, %d executions", len(f.jobs), len(f.executions))
	}
}

func TestStartReset(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets",
		`{"users":["1009","1002","1003x"],"options":{},"confirm":true}`, manager("niftywidgets"))
	if status != 400 {
		t.Fatalf("bad extension: status %d", status)
	}
	status, body = call(t, f, "POST", "/v1/domains/niftywidgets/resets",
		`{"users":["1009","1002"],"options":{"deleteVoicemailMessages":true},"confirm":true}`, manager("niftywidgets"))
	if status != http.StatusAccepted {
		t.Fatalf("status %d body %v", status, body)
	}
	if body["jobId"] != "job1" || body["status"] != "RUNNING" || body["total"] != 2.0 || body["percent"] != 0.0 {
		t.Errorf("job = %v", body)
	}
	if got := f.manifests["niftywidgets/job1"]; len(got) != 1 || len(got[0].Users) != 2 {
		t.Errorf("manifest = %v, want one batch of 2", got)
	}
	if len(f.executions) != 1 {
		t.Fatalf("%d executions started, want 1", len(f.executions))
	}
	in, _ := json.Marshal(f.executions[0])
	if bytes.Contains(in, []byte("Malcom")) || bytes.Contains(in, []byte("@")) || !bytes.Contains(in, []byte(`"jobId":"job1"`)) {
		t.Errorf("execution input %s must carry ids only", in)
	}
	if !f.executions[0].Options.DeleteVoicemailMessages {
		t.Errorf("options not passed to the execution: %+v", f.executions[0].Options)
	}
}

// A named extension the domain does not have does not hold back the others: the job
// starts for all of them, and the worker records the missing one's failure alone.
func TestStartResetWithAMissingUser(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets", `{"users":["1009","4242"],"confirm":true}`, manager("niftywidgets"))
	if status != http.StatusAccepted || body["total"] != 2.0 {
		t.Fatalf("got %d %v, want 202 with both users", status, body)
	}
	if got := f.manifests["niftywidgets/job1"]; len(got) != 1 || !slices.Equal(got[0].Users, []string{"1009", "4242"}) {
		t.Errorf("manifest = %v, want 1009 and 4242", got)
	}
}

func TestStartResetBatches(t *testing.T) {
	f := newFake()
	f.users["niftywidgets/1001"] = turnover.User{Domain: "niftywidgets", Extension: "1001"}
	status, _ := call(t, f, "POST", "/v1/domains/niftywidgets/resets", `{"users":["1009","1002","1001"],"confirm":true}`, manager("niftywidgets"))
	if status != 202 {
		t.Fatalf("status %d", status)
	}
	got := f.manifests["niftywidgets/job1"]
	if len(got) != 2 || len(got[0].Users) != 2 || len(got[1].Users) != 1 || got[1].Users[0] != "1001" {
		t.Errorf("manifest = %v, want batches of 2 then 1", got)
	}
}

func TestStartResetRefusals(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not confirmed", `{"users":["1009"],"options":{}}`, 422, "unprocessable"},
		{"confirm false", `{"users":["1009"],"confirm":false}`, 422, "unprocessable"},
		{"recycle row without option", `{"users":["1009"],"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}],"confirm":true}`, 422, "unprocessable"},
		{"recycle row for another user", `{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1002","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}],"confirm":true}`, 422, "unprocessable"},
		{"recycle row bad email", `{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann"}],"confirm":true}`, 400, "invalid_request"},
		{"recycle row twice", `{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com"},{"extension":"1009","firstName":"Bo","lastName":"Lee","email":"bo@example.com"}],"confirm":true}`, 400, "invalid_request"},
		{"recycle row unknown field", `{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com","status":"active"}],"confirm":true}`, 400, "invalid_request"},
		{"no users", `{"users":[],"confirm":true}`, 400, "invalid_request"},
		{"unknown field", `{"users":["1009"],"confirm":true,"status":"active"}`, 400, "invalid_request"},
		{"unknown option", `{"users":["1009"],"options":{"wipeEverything":true},"confirm":true}`, 400, "invalid_request"},
		{"wrong type", `{"users":"1009","confirm":true}`, 400, "invalid_request"},
		{"not JSON", `{"users":`, 400, "invalid_request"},
		{"two objects", `{"users":["1009"],"confirm":true}{}`, 400, "invalid_request"},
		{"empty", ``, 400, "invalid_request"},
		{"duplicate", `{"users":["1009","1009"],"confirm":true}`, 400, "invalid_request"},
		{"wrong-case key", `{"USERS":["1009"],"Confirm":true}`, 400, "invalid_request"},
		{"duplicate key", `{"users":["1002"],"users":["1009"],"confirm":true}`, 400, "invalid_request"},
		{"duplicate confirm", `{"users":["1009"],"confirm":false,"confirm":true}`, 400, "invalid_request"},
		{"nested wrong-case option key", `{"users":["1009"],"options":{"DeleteVoicemailMessages":true},"confirm":true}`, 400, "invalid_request"},
		{"wrong-case recycle row key", `{"users":["1009"],"options":{"recycle":true},"recycle":[{"Extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}],"confirm":true}`, 400, "invalid_request"},
		{"null", `null`, 400, "invalid_request"},
		{"own extension", `{"users":["1009","1003"],"confirm":true}`, 422, "unprocessable"},
		{"no known extension", `{"users":["4242","4243"],"confirm":true}`, 422, "unprocessable"},
		{"other domain's extension", `{"users":["2000"],"confirm":true}`, 422, "unprocessable"},
		{"too large", `{"users":["` + strings.Repeat("1", 5<<20) + `"],"confirm":true}`, 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets", tt.body, manager("niftywidgets"))
			if status != tt.status || errorCode(t, body) != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if len(f.jobs)+len(f.executions)+len(f.manifests)+len(f.recycle) != 0 {
				t.Errorf("refused request wrote a job, manifest, identity or execution")
			}
		})
	}
}

func TestGetReset(t *testing.T) {
	f := newFake()
	f.jobs["niftywidgets/j9"] = turnover.Job{Domain: "niftywidgets", ID: "j9", Status: turnover.JobRunning, Total: 4, Done: 1, Failed: 1}
	f.manifests["niftywidgets/j9"] = []turnover.Batch{{Users: []string{"1009", "1002"}}, {Users: []string{"1001", "1005"}}}
	f.results["niftywidgets/j9"] = []turnover.UserResult{
		{Extension: "1002", Outcome: turnover.OutcomeReset, Deleted: map[string]int{"voicemailMessages": 5}},
		{Extension: "1009", Outcome: turnover.OutcomeFailed, Error: "stopped"},
	}
	status, body := call(t, f, "GET", "/v1/domains/niftywidgets/resets/j9", "", manager("niftywidgets"))
	if status != 200 || body["percent"] != 50.0 || body["status"] != "RUNNING" {
		t.Fatalf("status %d body %v", status, body)
	}
	var got []string
	for _, u := range body["users"].([]any) {
		u := u.(map[string]any)
		got = append(got, fmt.Sprint(u["extension"], " ", u["status"], " ", u["error"], " ", u["deleted"]))
	}
	want := []string{"1009 failed stopped map[]", "1002 reset <nil> map[voicemailMessages:5]", "1001 pending <nil> map[]", "1005 pending <nil> map[]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("users =\n%v\nwant\n%v", got, want)
	}
	status, _ = call(t, f, "GET", "/v1/domains/other/resets/j9", "", manager("other"))
	if status != 404 {
		t.Errorf("another domain's job: status %d, want 404", status)
	}
}

func TestInternalErrorsSayNothing(t *testing.T) {
	f := newFake()
	f.fail = errors.New("dynamodb: table turnover-Table secret detail")
	status, body := call(t, f, "GET", "/v1/domains/niftywidgets/users", "", manager("niftywidgets"))
	if status != 500 || errorCode(t, body) != "internal" {
		t.Fatalf("status %d body %v", status, body)
	}
	if msg := body["error"].(map[string]any)["message"].(string); strings.Contains(msg, "secret") || strings.Contains(msg, "dynamodb") {
		t.Errorf("message leaks internals: %q", msg)
	}
}

func TestUnknownRoute(t *testing.T) {
	for _, p := range []string{"/v1/nothing", "/v1/domains/niftywidgets/resets//report.csv", "/v1/domains/niftywidgets/users/../numbers", "/v1/domains/niftywidgets/users/"} {
		status, body := call(t, newFake(), "GET", p, "", manager("niftywidgets"))
		if status != 404 || errorCode(t, body) != "not_found" {
			t.Errorf("GET %s: status %d body %v, want 404 not_found", p, status, body)
		}
	}
}

func TestNumbers(t *testing.T) {
	status, body := call(t, newFake(), "GET", "/v1/domains/niftywidgets/numbers", "", manager("niftywidgets"))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	n := body["numbers"].([]any)
	if n[0].(map[string]any)["status"] != "assigned" || n[1].(map[string]any)["status"] != "available" || n[1].(map[string]any)["extension"] != nil {
		t.Errorf("numbers = %v", n)
	}
}

func TestStartResetWithRecycleRows(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets",
		`{"users":["1009","1002"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann.lee@example.com","department":"Sales","sendWelcomeEmail":false}],"confirm":true}`,
		manager("niftywidgets"))
	if status != 202 {
		t.Fatalf("status %d body %v", status, body)
	}
	rows := f.recycle["niftywidgets/job1"]
	if len(rows) != 1 || rows[0].Extension != "1009" || rows[0].LastName != "Lee" || rows[0].Email != "ann.lee@example.com" {
		t.Errorf("stored rows = %+v", rows)
	}
	in, _ := json.Marshal(f.executions[0])
	if bytes.Contains(in, []byte("Ann")) || bytes.Contains(in, []byte("ann.lee")) {
		t.Errorf("the new identity leaked into the execution input: %s", in)
	}
	users := body["users"].([]any)
	if len(users) != 2 || users[0].(map[string]any)["status"] != "pending" {
		t.Errorf("a new job's users = %v, want both pending", users)
	}
}

func TestPreview(t *testing.T) {
	f := newFake()
	f.running = []string{"busy"}
	f.manifests["niftywidgets/busy"] = []turnover.Batch{{Users: []string{"1002"}}}
	status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets:preview",
		`{"users":["1009","1002","1003","4242"],"options":{"deleteVoicemailMessages":true,"removeDeviceLines":true}}`, manager("niftywidgets"))
	if status != 200 {
		t.Fatalf("status %d body %v", status, body)
	}
	users := body["users"].([]any)
	byExt := map[string]map[string]any{}
	for _, u := range users {
		byExt[u.(map[string]any)["extension"].(string)] = u.(map[string]any)
	}
	mal := byExt["1009"]
	if mal["found"] != true || fmt.Sprint(mal["willDelete"]) != "map[deviceLines:3 voicemailMessages:5]" || len(mal["warnings"].([]any)) != 0 {
		t.Errorf("1009 = %v", mal)
	}
	if fmt.Sprint(mal["alwaysRemoved"]) != "[name email password voicemailPin softPhones]" {
		t.Errorf("alwaysRemoved = %v", mal["alwaysRemoved"])
	}
	for ext, want := range map[string]string{"1002": "still running", "1003": "your own extension", "4242": "does not exist"} {
		if w := fmt.Sprint(byExt[ext]["warnings"]); !strings.Contains(w, want) {
			t.Errorf("%s warnings = %s, want %q", ext, w, want)
		}
	}
	if byExt["4242"]["found"] != false {
		t.Errorf("4242 found = %v", byExt["4242"]["found"])
	}
	totals := body["totals"].(map[string]any)
	if totals["users"] != 4.0 || totals["found"] != 3.0 || totals["voicemailMessages"] != 15.0 {
		t.Errorf("totals = %v", totals)
	}
	if len(f.jobs)+len(f.executions) != 0 {
		t.Errorf("a preview started a job")
	}
}

func TestIdempotencyKey(t *testing.T) {
	f := newFake()
	body := `{"users":["1009"],"confirm":true}`
	status, resp := call(t, f, "POST", "/v1/domains/niftywidgets/resets", body, manager("niftywidgets"), "idempotency-key", "")
	if status != 400 || errorCode(t, resp) != "invalid_request" || !strings.Contains(fmt.Sprint(resp), "Idempotency-Key") {
		t.Fatalf("no key: %d %v", status, resp)
	}
	if len(f.jobs)+len(f.idem) != 0 {
		t.Fatalf("a request without a key wrote something")
	}
	first, a := call(t, f, "POST", "/v1/domains/niftywidgets/resets", body, manager("niftywidgets"), "idempotency-key", "k1")
	again, b := call(t, f, "POST", "/v1/domains/niftywidgets/resets", "{\n  \"users\": [\"1009\"], \"confirm\": true\n}", manager("niftywidgets"), "idempotency-key", "k1")
	if first != 202 || again != 202 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("replay: %d %v then %d %v, want the same 202", first, a, again, b)
	}
	if len(f.executions) != 1 {
		t.Errorf("%d executions started for one key, want 1", len(f.executions))
	}
	status, resp = call(t, f, "POST", "/v1/domains/niftywidgets/resets", `{"users":["1002"],"confirm":true}`, manager("niftywidgets"), "idempotency-key", "k1")
	if status != 422 || errorCode(t, resp) != "unprocessable" {
		t.Errorf("same key, other body: %d %v, want 422", status, resp)
	}
	// A refused request releases its key: fixed, the same key then works.
	status, _ = call(t, f, "POST", "/v1/domains/niftywidgets/resets", `{"users":["4242"],"confirm":true}`, manager("niftywidgets"), "idempotency-key", "k2")
	if status != 422 || f.idem["niftywidgets/k2"] != nil {
		t.Errorf("refused request: %d, record %v; want 422 and no record", status, f.idem["niftywidgets/k2"])
	}
	for _, bad := range []string{strings.Repeat("x", 256), "with space", "tab\there"} {
		if status, _ := call(t, f, "POST", "/v1/domains/niftywidgets/resets", body, manager("niftywidgets"), "idempotency-key", bad); status != 400 {
			t.Errorf("key %q: %d, want 400", bad, status)
		}
	}
}

func TestResultsPages(t *testing.T) {
	f := newFake()
	f.jobs["niftywidgets/big"] = turnover.Job{Domain: "niftywidgets", ID: "big", Status: turnover.JobRunning, Total: 5}
	f.manifests["niftywidgets/big"] = []turnover.Batch{{Users: []string{"1001", "1002"}}, {Users: []string{"1003", "1004"}}, {Users: []string{"1005"}}}
	f.results["niftywidgets/big"] = []turnover.UserResult{{Extension: "1004", Outcome: turnover.OutcomeReset}}
	var got []string
	path := "/v1/domains/niftywidgets/resets/big?limit=2"
	for range 5 {
		status, body := call(t, f, "GET", path, "", manager("niftywidgets"))
		if status != 200 {
			t.Fatalf("status %d %v", status, body)
		}
		for _, u := range body["users"].([]any) {
			got = append(got, fmt.Sprint(u.(map[string]any)["extension"], ":", u.(map[string]any)["status"]))
		}
		next, _ := body["nextCursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/domains/niftywidgets/resets/big?limit=2&cursor=" + next
	}
	if want := "[1001:pending 1002:pending 1003:pending 1004:reset 1005:pending]"; fmt.Sprint(got) != want {
		t.Errorf("pages = %v, want %s", got, want)
	}
	if status, _ := call(t, f, "GET", "/v1/domains/niftywidgets/resets/big?cursor=bogus", "", manager("niftywidgets")); status != 400 {
		t.Errorf("bad cursor: %d", status)
	}
}

func TestRetryAndReport(t *testing.T) {
	f := newFake()
	f.jobs["niftywidgets/done"] = turnover.Job{Domain: "niftywidgets", ID: "done", Status: turnover.JobPartiallyFailed, Total: 2, Done: 1, Failed: 1,
		CreatedBy: "1003@niftywidgets", Options: turnover.ResetOptions{DeleteCustomContacts: true}}
	f.manifests["niftywidgets/done"] = []turnover.Batch{{Users: []string{"1009", "1002"}}}
	f.results["niftywidgets/done"] = []turnover.UserResult{
		{Extension: "1002", Outcome: turnover.OutcomeReset, Deleted: map[string]int{"customContacts": 2}},
		{Extension: "1009", Outcome: turnover.OutcomeFailed, Error: "=cmd|stopped"},
	}
	status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets/done:retry", "", manager("niftywidgets"), "idempotency-key", "retry-1")
	if status != 202 {
		t.Fatalf("retry: %d %v", status, body)
	}
	if got := f.manifests["niftywidgets/job1"]; len(got) != 1 || fmt.Sprint(got[0].Users) != "[1009]" {
		t.Errorf("retry job users = %v, want [1009]", got)
	}
	if !f.executions[0].Options.DeleteCustomContacts {
		t.Errorf("retry lost the options")
	}
	f.jobs["niftywidgets/run"] = turnover.Job{Domain: "niftywidgets", ID: "run", Status: turnover.JobRunning}
	if status, _ := call(t, f, "POST", "/v1/domains/niftywidgets/resets/run:retry", "", manager("niftywidgets"), "idempotency-key", "retry-2"); status != 409 {
		t.Errorf("retry of a running job: %d, want 409", status)
	}
	if status, _ := call(t, f, "POST", "/v1/domains/niftywidgets/resets/done:explode", "", manager("niftywidgets"), "idempotency-key", "retry-3"); status != 404 {
		t.Errorf("unknown action: %d, want 404", status)
	}
	if status, _ := call(t, f, "POST", "/v1/domains/niftywidgets/resets/done:retry", "", manager("niftywidgets"), "idempotency-key", ""); status != 400 {
		t.Errorf("retry without a key: %d, want 400", status)
	}
}

// A refused body is answered with what is wrong with it, by the member's path.
func TestStrictBodiesNameTheProblem(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"USERS":["1009"],"Confirm":true}`, `Unknown field "USERS".`},
		{`{"users":["1002"],"users":["1009"],"confirm":true}`, `Field "users" is named twice.`},
		{`{"users":["1009"],"options":{"Recycle":true},"confirm":true}`, `Unknown field "options.Recycle".`},
		{`{"users":["1009"],"options":{"recycle":"yes"},"confirm":true}`, `Field "options.recycle" has the wrong type.`},
		{`{"users":["1009"],"confirm":true} {}`, `The body must hold a single JSON object.`},
		{`{"users":["1009"],"confirm":tru}`, `The body is not valid JSON.`},
		{`  `, `The body is empty; send a JSON object.`},
	}
	for _, tt := range tests {
		f := newFake()
		status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets", tt.body, manager("niftywidgets"))
		if status != 400 || errorCode(t, body) != "invalid_request" || body["error"].(map[string]any)["message"] != tt.want {
			t.Errorf("%s: got %d %v, want 400 %q", tt.body, status, body, tt.want)
		}
		if len(f.jobs)+len(f.executions) != 0 {
			t.Errorf("%s: refused body started a job", tt.body)
		}
	}
}

// A manager may not reset their own extension by retrying a job someone else started,
// however the token spells their domain.
func TestRetryRefusesOwnExtension(t *testing.T) {
	reseller := map[string]string{"sub": "r@resell", "domain": "resell", "scope": "reseller", "domains": "[niftywidgets]"}
	tests := []struct {
		name   string
		claims map[string]string
		want   int
	}{
		{"manager", manager("niftywidgets"), 422},
		{"manager, domain in sub capitalised", map[string]string{"sub": "1003@NiftyWidgets", "domain": "niftywidgets", "scope": "office_manager"}, 422},
		{"manager, both domains capitalised", map[string]string{"sub": "1003@NIFTYWIDGETS", "domain": "NiftyWidgets", "scope": "office_manager"}, 422},
		{"the reseller who started it", reseller, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.jobs["niftywidgets/byres"] = turnover.Job{Domain: "niftywidgets", ID: "byres", Status: turnover.JobPartiallyFailed, Total: 2, Done: 1, Failed: 1, CreatedBy: "r@resell"}
			f.manifests["niftywidgets/byres"] = []turnover.Batch{{Users: []string{"1002", "1003"}}}
			f.results["niftywidgets/byres"] = []turnover.UserResult{
				{Extension: "1002", Outcome: turnover.OutcomeReset},
				{Extension: "1003", Outcome: turnover.OutcomeFailed, Error: "stopped"},
			}
			before := f.writes()
			status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets/byres:retry", "", tt.claims, "idempotency-key", "retry-own")
			if status != tt.want {
				t.Fatalf("got %d %v, want %d", status, body, tt.want)
			}
			if status == 202 {
				if got := f.manifests["niftywidgets/job1"]; len(got) != 1 || fmt.Sprint(got[0].Users) != "[1003]" {
					t.Errorf("retry job users = %v, want [1003]", got)
				}
				return
			}
			if msg := body["error"].(map[string]any)["message"]; errorCode(t, body) != "unprocessable" || msg != "You cannot reset your own extension 1003." {
				t.Errorf("got %v, want startReset's refusal", body)
			}
			if after := f.writes(); after != before {
				t.Errorf("the refused retry wrote:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// However the token spells the domain, a manager's own extension is refused.
func TestStartResetOwnExtensionAnyCase(t *testing.T) {
	for _, claims := range []map[string]string{
		{"sub": "1003@NiftyWidgets", "domain": "niftywidgets", "scope": "office_manager"},
		{"sub": "1003@NIFTYWIDGETS", "domain": "NiftyWidgets", "scope": "office_manager"},
	} {
		f := newFake()
		status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets", `{"users":["1009","1003"],"confirm":true}`, claims)
		if status != 422 || errorCode(t, body) != "unprocessable" || len(f.jobs)+len(f.executions) != 0 {
			t.Errorf("sub %s, domain %s: got %d %v and %d jobs, want 422 and none", claims["sub"], claims["domain"], status, body, len(f.jobs))
		}
	}
}

// The job id comes from the Idempotency-Key, which outlives the key's record (15 days).
// A key sent again after that finds its old job: another request is refused and the
// job left as it was; the same request gets the job back and starts nothing.
func TestIdempotencyKeyAfterItsRecordExpired(t *testing.T) {
	f := newFake()
	first := `{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}],"confirm":true}`
	if status, body := call(t, f, "POST", "/v1/domains/niftywidgets/resets", first, manager("niftywidgets"), "idempotency-key", "k1"); status != 202 {
		t.Fatalf("first request: %d %v", status, body)
	}
	job := f.jobs["niftywidgets/job1"]
	job.Status, job.Done = turnover.JobSucceeded, 1
	f.jobs["niftywidgets/job1"] = job
	expire := func() { delete(f.idem, "niftywidgets/k1") }
	jobs := func() string {
		b, _ := json.Marshal([]any{f.jobs, f.manifests, f.recycle, f.executions, f.puts})
		return string(b)
	}
	before := jobs()

	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"another body", "POST", "/v1/domains/niftywidgets/resets", `{"users":["1002"],"confirm":true}`, 422},
		{"a retry with the key", "POST", "/v1/domains/niftywidgets/resets/job1:retry", ``, 422},
		{"the same body", "POST", "/v1/domains/niftywidgets/resets", first, 202},
	}
	f.results["niftywidgets/job1"] = []turnover.UserResult{{Extension: "1009", Outcome: turnover.OutcomeFailed}} // something to retry
	for _, tt := range tests {
		expire()
		status, body := call(t, f, tt.method, tt.path, tt.body, manager("niftywidgets"), "idempotency-key", "k1")
		if status != tt.status {
			t.Fatalf("%s: got %d %v, want %d", tt.name, status, body, tt.status)
		}
		if after := jobs(); after != before {
			t.Errorf("%s changed the old job:\nbefore %s\nafter  %s", tt.name, before, after)
		}
		if status == 422 {
			if msg := body["error"].(map[string]any)["message"]; msg != "This Idempotency-Key was used with a different request; use a new key for a new request." {
				t.Errorf("%s: message %q", tt.name, msg)
			}
			continue
		}
		if body["jobId"] != "job1" || body["status"] != "SUCCEEDED" {
			t.Errorf("%s: got %v, want the old job as it is", tt.name, body)
		}
	}
}

// An earlier try that created its job but failed before it could answer is finished by
// the same request with the same key: its execution starts, nothing is written again.
func TestIdempotencyKeyFinishesAJobStartedPartway(t *testing.T) {
	f := newFake()
	body := `{"users":["1009","1002"],"confirm":true}`
	f.startErr = errors.New("states: throttled")
	if status, resp := call(t, f, "POST", "/v1/domains/niftywidgets/resets", body, manager("niftywidgets"), "idempotency-key", "k1"); status != 500 {
		t.Fatalf("first try: %d %v, want 500", status, resp)
	}
	if _, ok := f.jobs["niftywidgets/job1"]; !ok || f.puts != 1 || len(f.executions) != 0 {
		t.Fatalf("first try left job %v, %d writes, %d executions; want the job, its manifest, no execution", ok, f.puts, len(f.executions))
	}
	f.startErr = nil
	status, resp := call(t, f, "POST", "/v1/domains/niftywidgets/resets", body, manager("niftywidgets"), "idempotency-key", "k1")
	if status != 202 || resp["jobId"] != "job1" || resp["total"] != 2.0 {
		t.Fatalf("same request again: %d %v, want 202 with job1", status, resp)
	}
	if f.puts != 1 || len(f.executions) != 1 || f.executions[0].Manifest.Key == "" {
		t.Errorf("%d writes and executions %+v, want no new write and one execution of the manifest", f.puts, f.executions)
	}
}

// The access log line names the job or offboarding a request is about, and no log
// line holds a name or an address, whether the people are in the store or the body.
func TestAccessLog(t *testing.T) {
	w := newWorld()
	w.f.users["niftywidgets/1002"] = turnover.User{Domain: "niftywidgets", Extension: "1002", FirstName: "Kaylee", LastName: "Frye", Email: "kaylee@example.com", Status: turnover.StatusSetupRequired}
	requests := []struct{ method, target, body, key, want string }{
		{"GET", "/v1/domains/niftywidgets/resets/done", "", "jobId", "done"},
		{"GET", "/v1/domains/niftywidgets/resets/done/report.csv", "", "jobId", "done"},
		{"POST", "/v1/domains/niftywidgets/resets/done:retry", "", "jobId", "done"},
		{"GET", "/v1/domains/niftywidgets/offboardings/off1", "", "offboardingId", "off1"},
		{"POST", "/v1/domains/niftywidgets/recycles", `{"rows":[{"extension":"1002","firstName":"Ann","lastName":"Lee","email":"ann.lee@example.com","sendWelcomeEmail":true},{"extension":"1009","firstName":"Zoe","lastName":"Washburne","email":"zoe@example.com"}]}`, "", ""},
	}
	for _, r := range requests {
		w.logs.Reset()
		a := w.send(t, r.method, r.target, "application/json", r.body)
		var line map[string]any
		for l := range strings.Lines(w.logs.String()) {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q is not JSON: %v", l, err)
			}
			if m["msg"] == "request" {
				line = m
			}
			for _, personal := range []string{"Kaylee", "Frye", "kaylee@", "Jayne", "Cobb", "Malcom", "Reynolds", "Ann", "Lee", "ann.lee@", "Zoe", "Washburne", "zoe@", "@example.com"} {
				if strings.Contains(l, personal) {
					t.Errorf("%s %s: log line holds %q: %s", r.method, r.target, personal, l)
				}
			}
		}
		if line == nil {
			t.Fatalf("%s %s (%d): no access log line in %s", r.method, r.target, a.status, w.logs.String())
		}
		if r.key != "" && line[r.key] != r.want {
			t.Errorf("%s %s: access log %v, want %s %q", r.method, r.target, line, r.key, r.want)
		}
		if line["status"] != float64(a.status) || line["domain"] != "niftywidgets" {
			t.Errorf("%s %s: access log %v, answer %d", r.method, r.target, line, a.status)
		}
	}
}
