package api_test

// Fuzz targets for every request body and parameter the API decodes. Each input goes
// through the real handler, as an API Gateway event through the same adapter the api
// function uses, into a fresh in-memory world; what every answer must keep to is in
// keep. Seed inputs live in testdata/fuzz/<target>/ and run with every go test;
// `make fuzz` searches for new ones.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"turnover/internal/api"
	"turnover/internal/secret"
	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// fuzzNow is the fuzzed world's clock.
var fuzzNow = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// fuzzToken is the token of the live welcome link of 1005@niftywidgets in every world.
const fuzzToken = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c"

// fuzzUsername is how that link names its user.
var fuzzUsername = setup.Username("1005", "niftywidgets")

var extension = regexp.MustCompile(`^[0-9]{2,10}$`)

// rules are the real password and PIN rules with a stand-in for argon2id that keeps
// what it hashes readable: hashing is FuzzVerify's business in package secret, and its
// cost would only slow every accepted input down.
type rules struct{}

func (rules) CheckPassword(pw string) error        { return secret.CheckPassword(pw) }
func (rules) CheckPIN(pin, extension string) error { return secret.CheckPIN(pin, extension) }
func (rules) Hash(s string) (string, error)        { return "plain:" + s, nil }

// world is one server over one fake, with its log.
type world struct {
	f    *fake
	h    http.Handler
	logs bytes.Buffer
}

// newWorld is the fake's domain plus what the routes under fuzz act on: 1005, reset
// and waiting for a new identity, with a live welcome link; job "done", finished with
// 1009 failed; offboarding "off1" of 1002, scheduled, and "off2", started.
func newWorld() *world {
	w := &world{f: newFake()}
	f := w.f
	f.users["niftywidgets/1005"] = turnover.User{Domain: "niftywidgets", Extension: "1005", Scope: turnover.ScopeBasicUser, Status: turnover.StatusSetupRequired}
	f.jobs["niftywidgets/done"] = turnover.Job{Domain: "niftywidgets", ID: "done", Status: turnover.JobPartiallyFailed, Total: 2, Done: 1, Failed: 1,
		CreatedBy: "1003@niftywidgets", Options: turnover.ResetOptions{Recycle: true}}
	f.manifests["niftywidgets/done"] = []turnover.Batch{{Users: []string{"1009", "1002"}}}
	f.results["niftywidgets/done"] = []turnover.UserResult{
		{Extension: "1002", Outcome: turnover.OutcomeRecycled},
		{Extension: "1009", Outcome: turnover.OutcomeFailed, Error: "=cmd|' /C calc'!A0"},
	}
	f.recycle["niftywidgets/done"] = []turnover.NewIdentity{{Extension: "1009", FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"}}
	f.offboardings["niftywidgets/off1"] = turnover.Offboarding{Domain: "niftywidgets", ID: "off1", Status: turnover.OffboardingScheduled,
		At: fuzzNow.Add(48 * time.Hour), Users: []string{"1002"}, CreatedBy: "1003@niftywidgets", CreatedAt: fuzzNow}
	f.offboardings["niftywidgets/off2"] = turnover.Offboarding{Domain: "niftywidgets", ID: "off2", Status: turnover.OffboardingStarted,
		At: fuzzNow.Add(-time.Hour), Users: []string{"1009"}, CreatedBy: "1003@niftywidgets", CreatedAt: fuzzNow.Add(-48 * time.Hour), JobID: "done"}
	sum := sha256.Sum256([]byte(fuzzToken))
	f.links["niftywidgets/1005"] = turnover.SetupLink{TokenHash: hex.EncodeToString(sum[:]), Purpose: turnover.LinkWelcome, IssuedAt: fuzzNow, ValidUntil: fuzzNow.Add(168 * time.Hour)}

	svc := setup.New(f, f, rules{}, setup.Config{PortalURL: "https://portal.example.com", Brand: "Nifty Phones", LinkTTL: 168 * time.Hour})
	svc.Now = func() time.Time { return fuzzNow }
	srv := &api.Server{
		Users: f, Jobs: f, Manifests: f, Executions: f, Idempotency: f, Accounts: f, Offboardings: f, Setup: svc, Mail: f,
		BatchSize: 2,
		Log:       slog.New(slog.NewJSONHandler(&w.logs, nil)),
		Now:       func() time.Time { return fuzzNow },
	}
	w.h = srv.Handler()
	return w
}

// fixture is the API Gateway event every fuzzed request is made from.
var fixture = sync.OnceValues(func() (events.APIGatewayV2HTTPRequest, error) {
	var ev events.APIGatewayV2HTTPRequest
	raw, err := os.ReadFile("testdata/list-users.json")
	if err == nil {
		err = json.Unmarshal(raw, &ev)
	}
	return ev, err
})

type answer struct {
	status      int
	contentType string
	body        string
}

// send hands one request to the world's handler as API Gateway would: the office
// manager of niftywidgets is the caller of /v1/domains routes, the setup routes have no
// authorizer, and a body that is not UTF-8 arrives base64-encoded.
func (w *world) send(t *testing.T, method, target, contentType, body string) answer {
	t.Helper()
	ev, err := fixture()
	if err != nil {
		t.Fatal(err)
	}
	path, query, _ := strings.Cut(target, "?")
	ev.RawPath, ev.RawQueryString = path, query
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, path
	ev.Body = body
	if !utf8.ValidString(body) {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(body)), true
	}
	ev.Headers = maps.Clone(ev.Headers)
	ev.Headers["content-type"] = contentType
	ev.Headers["content-length"] = strconv.Itoa(len(body))
	ev.Headers["idempotency-key"] = "fuzz-key"
	if !strings.HasPrefix(path, "/v1/domains/") {
		ev.RequestContext.Authorizer = nil
	}
	resp, err := httpadapter.NewV2(w.h).ProxyWithContext(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	out := answer{status: resp.StatusCode, contentType: resp.Headers["Content-Type"], body: resp.Body}
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: response body: %v", method, target, err)
		}
		out.body = string(b)
	}
	return out
}

// keep checks what every answer keeps to: it is never a 5xx; a refusal (4xx) left
// every store as it was (before is the fake's writes before the request) and, but for
// the setup page, is one JSON error; and the log holds no setup token.
func (w *world) keep(t *testing.T, before string, a answer) {
	t.Helper()
	if a.status < 200 || a.status >= 500 {
		t.Fatalf("answered %d %s\nlog: %s", a.status, a.body, w.logs.String())
	}
	if strings.Contains(w.logs.String(), fuzzToken) {
		t.Fatalf("the log holds the setup token: %s", w.logs.String())
	}
	if a.status < 400 {
		return
	}
	if after := w.f.writes(); after != before {
		t.Fatalf("refused with %d %s, yet the stores changed:\nbefore %s\nafter  %s", a.status, a.body, before, after)
	}
	if strings.HasPrefix(a.contentType, "text/html") {
		return
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("refused with %d %q, which is not one JSON error (%v)", a.status, a.body, err)
	}
}

// post sends body to target in a fresh world and checks what every answer keeps to.
func post(t *testing.T, method, target, contentType, body string) (*world, answer) {
	t.Helper()
	w := newWorld()
	before := w.f.writes()
	a := w.send(t, method, target, contentType, body)
	w.keep(t, before, a)
	return w, a
}

// decodeAnswer reads an accepted answer's JSON body into v.
func decodeAnswer(t *testing.T, a answer, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("%d answer %q: %v", a.status, a.body, err)
	}
}

// resetBodies are seeds for the bodies of resets, previews and offboardings; the
// corpus in testdata holds more hostile ones.
var resetBodies = []string{
	`{"users":["1009","1002"],"options":{"deleteVoicemailMessages":true,"deleteVoicemailGreetings":true,"deleteAnsweringRules":true,"deleteCustomContacts":true,"unassignPhoneNumbers":true,"removeDeviceLines":true},"confirm":true}`,
	`{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann.lee@example.com","department":"Sales","sendWelcomeEmail":true}],"confirm":true}`,
	`{"users":["1009"],"confirm":true,"status":"active"}`,
	`{"users":"1009","confirm":1}`,
	`{"users":["1009"],"confirm":true}{}`,
	"{\"users\":[\"10\u000009\"],\"confirm\":true}",
	"",
}

// FuzzStartReset: POST /resets. A started job holds exactly the named users, who all
// exist and are not the caller, and its execution input carries ids only.
func FuzzStartReset(f *testing.F) {
	for _, b := range resetBodies {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		w, a := post(t, "POST", "/v1/domains/niftywidgets/resets", "application/json", body)
		if a.status >= 400 {
			return
		}
		if a.status != http.StatusAccepted {
			t.Fatalf("accepted with %d, want 202", a.status)
		}
		var job struct {
			JobID string `json:"jobId"`
			Total int    `json:"total"`
		}
		decodeAnswer(t, a, &job)
		var users []string
		for _, b := range w.f.manifests["niftywidgets/"+job.JobID] {
			users = append(users, b.Users...)
		}
		if len(users) == 0 || len(users) != job.Total || len(w.f.executions) != 1 {
			t.Fatalf("job %+v: manifest %v, %d executions", job, users, len(w.f.executions))
		}
		for _, ext := range users {
			if _, ok := w.f.users["niftywidgets/"+ext]; !ok || ext == "1003" {
				t.Fatalf("job resets %q, which is no other user of the domain", ext)
			}
		}
		in, _ := json.Marshal(w.f.executions[0])
		if bytes.Contains(in, []byte("@")) {
			t.Fatalf("execution input %s carries more than ids", in)
		}
		for _, row := range w.f.recycle["niftywidgets/"+job.JobID] {
			if err := row.Validate(); err != nil || !slices.Contains(users, row.Extension) {
				t.Fatalf("stored recycle row %+v: %v", row, err)
			}
		}
	})
}

// FuzzPreviewReset: POST /resets:preview changes nothing, whatever it answers.
func FuzzPreviewReset(f *testing.F) {
	for _, b := range resetBodies {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		w := newWorld()
		before := w.f.writes()
		a := w.send(t, "POST", "/v1/domains/niftywidgets/resets:preview", "application/json", body)
		w.keep(t, before, a)
		if after := w.f.writes(); after != before {
			t.Fatalf("a preview (%d) changed the stores:\nbefore %s\nafter  %s", a.status, before, after)
		}
	})
}

// FuzzRecycle: POST /recycles. Each row recycled is a valid identity of a reset
// extension, and mail is queued only for recycled rows.
func FuzzRecycle(f *testing.F) {
	f.Add(`{"rows":[{"extension":"1005","firstName":"Ann","lastName":"Lee","email":"ann.lee@example.com","department":"Sales","sendWelcomeEmail":true}]}`)
	f.Add(`{"rows":[{"extension":"1005","firstName":" Ann","lastName":"Lee","email":"Ann <ann@example.com>"},{"extension":"1005x"}]}`)
	f.Add(`{"rows":[]}`)
	f.Add(`{"rows":{"extension":"1005"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		w, a := post(t, "POST", "/v1/domains/niftywidgets/recycles", "application/json", body)
		if a.status >= 400 {
			return
		}
		var out struct {
			Results []struct{ Extension, Status, Email string }
		}
		decodeAnswer(t, a, &out)
		recycled := 0
		for _, r := range out.Results {
			if r.Status == "recycled" {
				recycled++
			}
		}
		if recycled != len(w.f.identities) {
			t.Fatalf("%d rows say recycled, %d identities stored", recycled, len(w.f.identities))
		}
		for k, id := range w.f.identities {
			if err := id.Validate(); err != nil || k != "niftywidgets/1005" {
				t.Fatalf("stored %s = %+v: %v", k, id, err)
			}
		}
		for _, m := range w.f.mail {
			if _, ok := w.f.identities[m.Domain+"/"+m.Extension]; !ok || m.Purpose != turnover.LinkWelcome {
				t.Fatalf("queued mail %+v for a row not recycled", m)
			}
		}
	})
}

// FuzzBulkAction: POST /bulk-actions. Only existing users other than the caller have
// their password reset, mail is queued only for users with an address on file, and no
// recovery link goes to a user who has not finished setup.
func FuzzBulkAction(f *testing.F) {
	f.Add(`{"action":"send_welcome_email","users":["1002","1009"]}`)
	f.Add(`{"action":"force_password_reset","users":["1002","1003","4242"],"sendRecoveryEmail":true}`)
	f.Add(`{"action":"send_welcome_email","users":["1002"],"sendRecoveryEmail":true}`)
	f.Add(`{"action":"delete_everything","users":["1002"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		w, a := post(t, "POST", "/v1/domains/niftywidgets/bulk-actions", "application/json", body)
		if a.status >= 400 {
			return
		}
		for _, k := range w.f.forced {
			if _, ok := w.f.users[k]; !ok || k == "niftywidgets/1003" {
				t.Fatalf("forced a password reset of %s", k)
			}
		}
		for _, m := range w.f.mail {
			if m.Domain+"/"+m.Extension != "niftywidgets/1002" {
				t.Fatalf("queued mail %+v for a user without an address on file", m)
			}
			if u := w.f.users["niftywidgets/1002"]; m.Purpose == turnover.LinkRecovery && (u.Status == turnover.StatusSetupRequired || u.VoicemailPINHash == "") {
				t.Fatalf("queued a recovery link, which asks for no PIN, for %+v", u)
			}
		}
	})
}

// checkOffboarding holds a stored offboarding to what the API promises: 1 to 99
// existing users, none of them the caller, in the next year, with valid recycle rows.
func checkOffboarding(t *testing.T, w *world, o turnover.Offboarding) {
	t.Helper()
	if n := len(o.Users); n == 0 || n > 99 {
		t.Fatalf("offboarding %s names %d users", o.ID, n)
	}
	for _, ext := range o.Users {
		if _, ok := w.f.users["niftywidgets/"+ext]; !ok || ext == "1003" || !extension.MatchString(ext) {
			t.Fatalf("offboarding %s names %q", o.ID, ext)
		}
	}
	if !o.At.After(fuzzNow.Add(-time.Second)) || o.At.After(fuzzNow.Add(366*24*time.Hour)) || o.At.Location() != time.UTC {
		t.Fatalf("offboarding %s at %v", o.ID, o.At)
	}
	if o.Status != turnover.OffboardingScheduled || o.Domain != "niftywidgets" {
		t.Fatalf("offboarding %+v", o)
	}
	for _, row := range o.Recycle {
		if err := row.Validate(); err != nil || !slices.Contains(o.Users, row.Extension) || !o.Options.Recycle {
			t.Fatalf("offboarding %s recycles %+v: %v", o.ID, row, err)
		}
	}
}

// created returns the offboardings a request added to the world.
func created(w *world) []turnover.Offboarding {
	var out []turnover.Offboarding
	for k, o := range w.f.offboardings {
		if k != "niftywidgets/off1" && k != "niftywidgets/off2" {
			out = append(out, o)
		}
	}
	return out
}

// FuzzCreateOffboarding: POST /offboardings schedules exactly one valid offboarding.
func FuzzCreateOffboarding(f *testing.F) {
	f.Add(`{"users":["1009"],"options":{"recycle":true},"recycle":[{"extension":"1009","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}],"at":"2026-12-04T17:00:00-05:00"}`)
	f.Add(`{"users":["1009"],"at":"2026-11-22T09:00:00Z"}`)
	f.Add(`{"users":["1009"],"at":"2027-11-24T09:00:00Z"}`)
	f.Add(`{"users":["1002"],"at":"2026-12-04T17:00:00Z"}`)
	f.Add(`{"users":["1009"],"at":"tomorrow"}`)
	f.Add(`{"users":["1009"],"at":"2026-12-04T17:00:00Z","confirm":true}`)
	f.Fuzz(func(t *testing.T, body string) {
		w, a := post(t, "POST", "/v1/domains/niftywidgets/offboardings", "application/json", body)
		if a.status >= 400 {
			return
		}
		got := created(w)
		if a.status != http.StatusCreated || len(got) != 1 {
			t.Fatalf("answered %d with %d offboardings made", a.status, len(got))
		}
		checkOffboarding(t, w, got[0])
	})
}

// FuzzMoveOffboarding: PATCH /offboardings/{id} moves a scheduled offboarding into
// the next year and never one that has started.
func FuzzMoveOffboarding(f *testing.F) {
	f.Add(`{"at":"2026-12-04T17:00:00-05:00"}`, false)
	f.Add(`{"at":"2026-12-04T17:00:00-05:00"}`, true)
	f.Add(`{"at":"2026-11-21T17:00:00Z"}`, false)
	f.Add(`{"at":"2026-12-04T17:00:00Z","users":["1003"]}`, false)
	f.Add(`{"at":null}`, false)
	f.Fuzz(func(t *testing.T, body string, started bool) {
		id := "off1"
		if started {
			id = "off2"
		}
		w, a := post(t, "PATCH", "/v1/domains/niftywidgets/offboardings/"+id, "application/json", body)
		if a.status >= 400 {
			return
		}
		o := w.f.offboardings["niftywidgets/"+id]
		if started || a.status != http.StatusOK {
			t.Fatalf("moving %s answered %d", id, a.status)
		}
		checkOffboarding(t, w, o)
	})
}

// FuzzImportOffboardings: POST /offboardings:import, the HR export in CSV. Every row
// scheduled is a valid offboarding, every bad row is reported by a line of the body
// that holds it, and a byte order mark changes nothing.
func FuzzImportOffboardings(f *testing.F) {
	f.Add("extension,at,firstName,lastName,email,department\r\n1009,2026-12-04T17:00:00Z,Ann,Lee,ann@example.com,Sales\r\n1002,2026-12-01T09:00:00Z\r\n", "deleteVoicemailMessages,removeDeviceLines")
	f.Add("\ufeffExtension,At\n1009,2026-12-04T17:00:00Z\n=cmd|' /C calc'!A0,2026-12-04T17:00:00Z\n", "")
	f.Add("extension,at\n\"1009\",\"2026-12-04T17:00:00Z\"\n\n1002,\"bad\ntime\"\n", "recycle")
	f.Add("extension,at\n1009,2026-12-04T17:00:00Z\n", "wipeEverything")
	f.Fuzz(func(t *testing.T, body, options string) {
		target := "/v1/domains/niftywidgets/offboardings:import?options=" + url.QueryEscape(options)
		w, a := post(t, "POST", target, "text/csv", body)
		if !strings.HasPrefix(body, "\ufeff") {
			bom := newWorld()
			before := bom.f.writes()
			b := bom.send(t, "POST", target, "text/csv", "\ufeff"+body)
			bom.keep(t, before, b)
			if a.status != b.status || a.body != b.body {
				t.Fatalf("a byte order mark changed the answer from %d %s\nto %d %s", a.status, a.body, b.status, b.body)
			}
		}
		if a.status >= 400 {
			return
		}
		var out struct {
			Scheduled []struct{ ID string }
			Errors    []struct {
				Line   int
				Reason string
			}
		}
		decodeAnswer(t, a, &out)
		got := created(w)
		if len(got) != len(out.Scheduled) {
			t.Fatalf("%d offboardings made, %d reported scheduled", len(got), len(out.Scheduled))
		}
		for _, o := range got {
			checkOffboarding(t, w, o)
		}
		lines := strings.Split(body, "\n")
		last := 1
		for _, e := range out.Errors {
			if e.Line <= last || e.Line > len(lines) || strings.TrimSpace(lines[e.Line-1]) == "" {
				t.Fatalf("error reported on line %d (after line %d) of %d: %q", e.Line, last, len(lines), e.Reason)
			}
			last = e.Line
		}
	})
}

// FuzzRetryJob: POST /resets/{jobId}:retry takes no body but an empty one or {}, and
// retries exactly the users the job failed.
func FuzzRetryJob(f *testing.F) {
	f.Add("")
	f.Add("{}")
	f.Add(" {\n} ")
	f.Add(`{"users":["1002"]}`)
	f.Add("[]")
	f.Fuzz(func(t *testing.T, body string) {
		w, a := post(t, "POST", "/v1/domains/niftywidgets/resets/done:retry", "application/json", body)
		if a.status >= 400 {
			return
		}
		var job struct{ JobID string }
		decodeAnswer(t, a, &job)
		if m := w.f.manifests["niftywidgets/"+job.JobID]; len(m) != 1 || !slices.Equal(m[0].Users, []string{"1009"}) {
			t.Fatalf("the retry resets %v, want [1009]", m)
		}
		if rows := w.f.recycle["niftywidgets/"+job.JobID]; len(rows) != 1 || rows[0].Extension != "1009" {
			t.Fatalf("the retry recycles %+v", rows)
		}
	})
}

// FuzzCompleteSetup: POST /v1/setup, as JSON or from the setup page's form. Setup
// succeeds only with the live link's username and token and a password and PIN the
// rules allow; a refusal keeps the link, and counts at most one failed attempt against
// the link's user.
func FuzzCompleteSetup(f *testing.F) {
	valid := setupBody(fuzzUsername, fuzzToken, "correct horse battery", "2580")
	f.Add(valid, false)
	f.Add(setupBody(fuzzUsername, fuzzToken, "password", "1234"), false)
	f.Add(setupBody(strings.TrimRight(fuzzUsername, "="), strings.ToUpper(fuzzToken), "correct horse battery", "2580"), false)
	f.Add(url.Values{"username": {fuzzUsername}, "auth_code": {fuzzToken}, "password": {"correct horse battery"}, "voicemail_pin": {"2580"}}.Encode(), true)
	f.Add("username=%zz&auth_code=", true)
	f.Fuzz(func(t *testing.T, body string, form bool) {
		contentType := "application/json"
		if form {
			contentType = "application/x-www-form-urlencoded"
		}
		w := newWorld()
		before := w.f.writes()
		a := w.send(t, "POST", "/v1/setup", contentType, body)
		w.keep(t, before, a)
		failures := 0
		for _, n := range w.f.failures {
			failures += n
		}
		if failures > 1 {
			t.Fatalf("one request counted %d failed attempts: %v", failures, w.f.failures)
		}
		if a.status != http.StatusOK {
			return
		}
		got, ok := w.f.active["niftywidgets/1005"]
		if !ok || len(w.f.active) != 1 || w.f.links["niftywidgets/1005"].TokenHash != "" {
			t.Fatalf("setup succeeded, yet the link is %v and the accounts %v", w.f.links, w.f.active)
		}
		pw, pin := strings.TrimPrefix(got[0], "plain:"), strings.TrimPrefix(got[1], "plain:")
		if secret.CheckPassword(pw) != nil || secret.CheckPIN(pin, "1005") != nil {
			t.Fatalf("setup stored the password %q and PIN %q, which the rules refuse", pw, pin)
		}
	})
}

func setupBody(username, token, password, pin string) string {
	b, _ := json.Marshal(map[string]string{"username": username, "authCode": token, "password": password, "voicemailPin": pin})
	return string(b)
}

// FuzzSetupPage: GET /portal/resets?auth_code=…&username=…, the page a setup link
// opens. Only the live link opens the form; nothing is written; nothing in the
// parameters becomes markup.
func FuzzSetupPage(f *testing.F) {
	f.Add(fuzzToken, fuzzUsername)
	f.Add(fuzzToken, strings.TrimRight(fuzzUsername, "="))
	f.Add(fuzzToken+"\n", fuzzUsername)
	f.Add(`"><script>alert(1)</script>`, base64.StdEncoding.EncodeToString([]byte(`1005@niftywidgets"><script>`)))
	f.Fuzz(func(t *testing.T, authCode, username string) {
		w := newWorld()
		before := w.f.writes()
		target := "/portal/resets?" + url.Values{"auth_code": {authCode}, "username": {username}, "lang": {"en_us"}}.Encode()
		a := w.send(t, "GET", target, "", "")
		w.keep(t, before, a)
		if after := w.f.writes(); after != before {
			t.Fatalf("opening the page wrote to the stores")
		}
		// A failed opening counts one attempt against the user, as a failed setup does.
		failures := 0
		for _, n := range w.f.failures {
			failures += n
		}
		if want := map[bool]int{true: 0, false: 1}[a.status == http.StatusOK]; failures != want {
			t.Fatalf("a page answered %d counted %d failed attempts: %v", a.status, failures, w.f.failures)
		}
		if strings.Contains(strings.ToLower(a.body), "<script") {
			t.Fatalf("the page holds a script: %s", a.body)
		}
		if a.status != http.StatusOK {
			return
		}
		ext, domain, ok := setup.ParseUsername(username)
		if authCode != fuzzToken || !ok || ext != "1005" || domain != "niftywidgets" {
			t.Fatalf("the form opened for auth_code %q, username %q", authCode, username)
		}
	})
}

// FuzzResultsPage: GET /resets/{jobId}?limit=…&cursor=…, the pages of a job's users.
func FuzzResultsPage(f *testing.F) {
	f.Add("2", "")
	f.Add("1", base64.RawURLEncoding.EncodeToString([]byte("users:1")))
	f.Add("1000", base64.RawURLEncoding.EncodeToString([]byte("users:-1")))
	f.Add("", base64.RawURLEncoding.EncodeToString([]byte("users:9223372036854775807")))
	f.Fuzz(func(t *testing.T, limit, cursor string) {
		w := newWorld()
		before := w.f.writes()
		a := w.send(t, "GET", "/v1/domains/niftywidgets/resets/done?"+url.Values{"limit": {limit}, "cursor": {cursor}}.Encode(), "", "")
		w.keep(t, before, a)
		if a.status >= 400 {
			return
		}
		var page struct{ Users []struct{ Extension string } }
		decodeAnswer(t, a, &page)
		for _, u := range page.Users {
			if u.Extension != "1009" && u.Extension != "1002" {
				t.Fatalf("a page of job done shows %q", u.Extension)
			}
		}
	})
}

// FuzzLookupDirectory: GET /directory?digits=… reads and never writes.
func FuzzLookupDirectory(f *testing.F) {
	f.Add("739")
	f.Add("0")
	f.Add("73９")
	f.Add(strings.Repeat("2", 33))
	f.Fuzz(func(t *testing.T, digits string) {
		w := newWorld()
		before := w.f.writes()
		a := w.send(t, "GET", "/v1/domains/niftywidgets/directory?digits="+url.QueryEscape(digits), "", "")
		w.keep(t, before, a)
		if a.status == http.StatusOK && (digits == "" || strings.Trim(digits, "23456789") != "" || len(digits) > 32) {
			t.Fatalf("digits %q accepted", digits)
		}
	})
}
