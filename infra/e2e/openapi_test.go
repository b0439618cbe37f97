package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"turnover/infra/localstack"
	"turnover/internal/api"
	"turnover/internal/reset"
	"turnover/internal/s3store"
	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// Every request the tests send to the local HTTP API goes through apiClient, which
// checks the request and its answer against openapi.yaml: an answer that the file does
// not describe, or a request the file refuses that the API accepts, fails the test.

// spec is openapi.yaml, loaded once, with the local stack as its only server.
var spec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

func loadSpec() (*openapi3.T, routers.Router, error) {
	spec.once.Do(func() {
		// The setup page and the form's answers are HTML: checked as opaque text.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
		// CSV rows of an import may have 2 to 6 fields: checked by the API, not here.
		openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.FileBodyDecoder)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err == nil {
			err = doc.Validate(loader.Context)
		}
		if err != nil {
			spec.err = fmt.Errorf("load openapi.yaml: %w", err)
			return
		}
		doc.Servers = openapi3.Servers{{URL: stack.APIURL}}
		spec.doc = doc
		if spec.router, err = gorillamux.NewRouter(doc); err != nil {
			spec.err = fmt.Errorf("route openapi.yaml: %w", err)
		}
	})
	return spec.doc, spec.router, spec.err
}

// exercised counts, by operationId and status, the exchanges whose answer matched
// openapi.yaml, with a request that matched it too or that both it and the API refused.
var exercised = struct {
	sync.Mutex
	ops map[string]map[int]int
}{ops: map[string]map[int]int{}}

// apiClient is the client for requests to the local HTTP API: it reports every
// difference between an exchange and openapi.yaml as a failure of t.
func apiClient(t *testing.T) *http.Client {
	return &http.Client{Transport: specChecker{t: t, next: http.DefaultTransport}}
}

type specChecker struct {
	t    *testing.T
	next http.RoundTripper
}

func (c specChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	// withBody is a copy of req with its own reader of the body: one is checked, one sent.
	withBody := func() *http.Request {
		r := req.Clone(req.Context())
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		return r
	}
	name := req.Method + " " + req.URL.Path

	_, router, err := loadSpec()
	if err != nil {
		c.t.Error(err)
		return c.next.RoundTrip(withBody())
	}
	checked := withBody()
	route, params, err := router.FindRoute(checked)
	if err != nil {
		c.t.Errorf("%s is not in openapi.yaml: %v", name, err)
		return c.next.RoundTrip(withBody())
	}
	reqOpts := &openapi3filter.Options{
		AuthenticationFunc:                bearerGiven,
		MultiError:                        true,
		RejectWhenRequestBodyNotSpecified: true,
		SkipSettingDefaults:               true,
	}
	reqOpts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.RequestValidationInput{Request: checked, PathParams: params, Route: route, Options: reqOpts}
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)

	resp, err := c.next.RoundTrip(withBody())
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))

	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	respOpts.WithCustomSchemaErrorFunc(schemaError)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                respOpts,
	}
	out.SetBodyBytes(raw)
	respErr := openapi3filter.ValidateResponse(req.Context(), out)
	if respErr != nil {
		c.t.Errorf("%s: the answer does not match openapi.yaml (%s): %d %s\n%v", name, route.Operation.OperationID, resp.StatusCode, clip(raw), respErr)
	}
	// A request the file refuses must be refused by the API too; the API may refuse
	// more (a rule, an unknown extension), never less.
	acceptedAgainstFile := reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode >= 500)
	if acceptedAgainstFile {
		c.t.Errorf("%s: openapi.yaml refuses the request, yet the API answered %d: %v", name, resp.StatusCode, reqErr)
	}
	// An answer the file describes counts, whether the request matched the file or was
	// one the file refuses too (a body too large, a missing header).
	if respErr == nil && !acceptedAgainstFile {
		exercised.Lock()
		id := route.Operation.OperationID
		if exercised.ops[id] == nil {
			exercised.ops[id] = map[int]int{}
		}
		exercised.ops[id][resp.StatusCode]++
		exercised.Unlock()
	}
	return resp, nil
}

// bearerGiven accepts any bearer token: API Gateway's authorizer is what checks it.
func bearerGiven(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme, tok, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// schemaError says where a value breaks the schema and why, without the whole schema.
func schemaError(err *openapi3.SchemaError) string {
	return "/" + strings.Join(err.JSONPointer(), "/") + ": " + err.Reason
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// TestEveryDocumentedOperation sends every operation of openapi.yaml, with answers that
// succeed and every documented way to fail, then checks that each response the file
// documents for each operation came back, matching the file, to a request of this test
// (unproducible lists the few the local stack cannot give, and why).
func TestEveryDocumentedOperation(t *testing.T) {
	ctx := context.Background()
	before := seenSince(nil)
	domain := freshDomain(t, "openapi")
	tok := tokenFor(t, domain)
	base := "/v1/domains/" + domain
	var e struct {
		Error struct{ Code, Message string }
	}
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: status %d, want %d", what, got, want)
		}
	}

	// A request whose Idempotency-Key another request still holds waits 10 s for it,
	// then gets 409: those go first, and the rest of the test goes on meanwhile.
	later := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	csvOf := func(ext string) []byte {
		return []byte("extension,at\n" + ext + "," + later.Format(time.RFC3339) + "\n")
	}
	held := map[string]<-chan answer{
		"startReset":          inFlight(t, tok, domain, "POST", base+"/resets", "application/json", jsonOf(t, map[string]any{"users": []string{"1004"}, "confirm": true})),
		"recycleUsers":        inFlight(t, tok, domain, "POST", base+"/recycles", "application/json", jsonOf(t, map[string]any{"rows": []any{map[string]any{"extension": "1009", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"}}})),
		"bulkAction":          inFlight(t, tok, domain, "POST", base+"/bulk-actions", "application/json", jsonOf(t, map[string]any{"action": "send_welcome_email", "users": []string{"1005"}})),
		"scheduleOffboarding": inFlight(t, tok, domain, "POST", base+"/offboardings", "application/json", jsonOf(t, map[string]any{"users": []string{"1005"}, "at": later.Format(time.RFC3339)})),
		"importOffboardings":  inFlight(t, tok, domain, "POST", base+"/offboardings:import", "text/csv", csvOf("1005")),
	}

	// The description itself, without a token.
	resp, raw := send(t, "", "GET", "/v1/openapi.yaml", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(raw, api.OpenAPI) {
		t.Errorf("GET /v1/openapi.yaml = %d %s, %d bytes; want openapi.yaml", resp.StatusCode, resp.Header.Get("Content-Type"), len(raw))
	}

	// Users, a page at a time.
	var page struct {
		Users      []user
		NextCursor *string
	}
	expect("first page", doIn(t, tok, "GET", base+"/users?limit=4", nil, &page), 200)
	if len(page.Users) != 4 || page.NextCursor == nil {
		t.Fatalf("first page = %d users, next %v; want 4 and a cursor", len(page.Users), page.NextCursor)
	}
	expect("next page", doIn(t, tok, "GET", base+"/users?limit=4&cursor="+url.QueryEscape(*page.NextCursor), nil, &page), 200)
	expect("filters", doIn(t, tok, "GET", base+"/users?status=active&department=Sales&scope=call_center_supervisor&q=inara", nil, &page), 200)
	expect("bad limit", doIn(t, tok, "GET", base+"/users?limit=0", nil, &e), 400)
	expect("no token", doIn(t, "", "GET", base+"/users", nil, nil), 401)
	expect("bad token", doIn(t, "not.a.jwt", "GET", base+"/users", nil, nil), 401)
	expect("another domain", doIn(t, tokenFor(t, "niftywidgets"), "GET", base+"/users", nil, &e), 403)
	expect("basic user", doIn(t, token(t, domain, "basic_user"), "GET", base+"/users", nil, &e), 403)
	expect("not a domain", doIn(t, tok, "GET", "/v1/domains/Not_A_Domain/users", nil, &e), 400)

	var u user
	expect("one user", doIn(t, tok, "GET", base+"/users/1002", nil, &u), 200)
	expect("no such user", doIn(t, tok, "GET", base+"/users/4242", nil, &e), 404)
	expect("not an extension", doIn(t, tok, "GET", base+"/users/x1", nil, &e), 400)

	// Directory and numbers.
	var dir struct{ Entries []struct{ Extension string } }
	expect("directory", doIn(t, tok, "GET", base+"/directory?digits="+turnover.KeypadDigits("Frye"), nil, &dir), 200)
	if len(dir.Entries) != 1 || dir.Entries[0].Extension != "1002" {
		t.Errorf("directory for Frye = %+v", dir.Entries)
	}
	expect("bad digits", doIn(t, tok, "GET", base+"/directory?digits=1", nil, &e), 400)
	expect("no digits", doIn(t, tok, "GET", base+"/directory", nil, &e), 400)
	var inv struct {
		Numbers []struct{ Number, Status string }
	}
	expect("numbers", doIn(t, tok, "GET", base+"/numbers", nil, &inv), 200)
	expect("phones", doIn(t, tok, "GET", base+"/phones", nil, &struct{}{}), 200)

	// Preview: found and missing users, warnings, every option.
	all := map[string]any{"deleteVoicemailMessages": true, "deleteVoicemailGreetings": true, "deleteAnsweringRules": true,
		"deleteCustomContacts": true, "unassignPhoneNumbers": true, "removeDeviceLines": true, "recycle": true}
	row := map[string]any{"extension": "1002", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "department": "Engineering"}
	var preview struct {
		Users []struct {
			Extension string
			Found     bool
		}
		Totals map[string]int
	}
	expect("preview", doIn(t, tok, "POST", base+"/resets:preview", map[string]any{"users": []string{"1002", "1003", "4242"}, "options": all, "recycle": []any{row}}, &preview), 200)
	if len(preview.Users) != 3 || !preview.Users[0].Found || preview.Users[2].Found || preview.Totals["users"] != 3 || preview.Totals["found"] != 2 {
		t.Errorf("preview = %+v", preview)
	}
	expect("preview, unknown field", doIn(t, tok, "POST", base+"/resets:preview", map[string]any{"users": []string{"1002"}, "bogus": true}, &e), 400)
	expect("preview, row without recycle", doIn(t, tok, "POST", base+"/resets:preview", map[string]any{"users": []string{"1002"}, "recycle": []any{row}}, &e), 422)

	// Start a job; the same key again gets the same answer.
	body := map[string]any{"users": []string{"1002"}, "options": all, "recycle": []any{row}, "confirm": true}
	key := "openapi-" + domain
	resp, raw = send(t, tok, "POST", base+"/resets", key, body)
	if resp.StatusCode != 202 || resp.Header.Get("Location") == "" {
		t.Fatalf("start: %d (Location %q) %s", resp.StatusCode, resp.Header.Get("Location"), raw)
	}
	again, rawAgain := send(t, tok, "POST", base+"/resets", key, body)
	if again.StatusCode != 202 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(raw, rawAgain) {
		t.Errorf("the same key again: %d %q %s, want the first answer replayed", again.StatusCode, again.Header.Get("Idempotent-Replayed"), rawAgain)
	}
	jobID := strings.TrimPrefix(resp.Header.Get("Location"), base+"/resets/")
	expect("start, no key", doWithKey(t, tok, "POST", base+"/resets", "", body, &e), 400)
	expect("start, unconfirmed", doIn(t, tok, "POST", base+"/resets", map[string]any{"users": []string{"1004"}}, &e), 422)
	expect("start, own extension", doIn(t, tok, "POST", base+"/resets", map[string]any{"users": []string{"1003"}, "confirm": true}, &e), 422)
	expect("start, same key, other body", doWithKey(t, tok, "POST", base+"/resets", key, map[string]any{"users": []string{"1004"}, "confirm": true}, &e), 422)
	if j := waitJob(t, tok, domain, jobID); j.Status != "SUCCEEDED" || j.Users[0].Status != "recycled" {
		t.Errorf("job = %+v", j)
	}
	var j job
	expect("job, one user a page", doIn(t, tok, "GET", base+"/resets/"+jobID+"?limit=1", nil, &j), 200)
	expect("job, bad cursor", doIn(t, tok, "GET", base+"/resets/"+jobID+"?cursor=nope", nil, &e), 400)
	expect("no such job", doIn(t, tok, "GET", base+"/resets/nosuchjob", nil, &e), 404)
	resp, raw = send(t, tok, "GET", base+"/resets/"+jobID+"/report.csv", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(string(raw), jobID) {
		t.Errorf("report: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), clip(raw))
	}
	expect("report of no such job", doIn(t, tok, "GET", base+"/resets/nosuchjob/report.csv", nil, &e), 404)
	expect("retry, nothing failed", doIn(t, tok, "POST", base+"/resets/"+jobID+":retry", nil, &e), 422)
	expect("retry, no such job", doIn(t, tok, "POST", base+"/resets/nosuchjob:retry", map[string]any{}, &e), 404)

	// A job that is still running cannot be retried; one with a failed user can.
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: "openapi-running", Status: turnover.JobRunning, Total: 1, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	expect("retry, still running", doIn(t, tok, "POST", base+"/resets/openapi-running:retry", nil, &e), 409)
	failedJob := turnover.Job{Domain: domain, ID: "openapi-failed", Status: turnover.JobPartiallyFailed, Total: 2, CreatedAt: time.Now()}
	if err := store().CreateJob(ctx, failedJob); err != nil {
		t.Fatal(err)
	}
	users := []string{"1004", "4242"}
	manifests := s3store.New(s3.NewFromConfig(stack.AWS), stack.Resources.Buckets["Bucket"])
	if _, err := manifests.PutManifest(ctx, domain, failedJob.ID, []turnover.Batch{{Users: users}}); err != nil {
		t.Fatal(err)
	}
	if out, raw := invokeReset(t, reset.BatchInput{Domain: domain, JobID: failedJob.ID, Options: turnover.ResetOptions{DeleteCustomContacts: true}, Batch: turnover.Batch{Users: users}}); out.Done != 1 || out.Failed != 1 {
		t.Fatalf("reset of the failing job = %+v (%s)", out, raw)
	}
	expect("job with a failure", doIn(t, tok, "GET", base+"/resets/"+failedJob.ID, nil, &j), 200)
	if len(j.Users) != 2 || j.Users[1].Status != "failed" || j.Users[1].Error == nil {
		t.Errorf("job with a failure = %+v", j)
	}
	var retried job
	expect("retry", doIn(t, tok, "POST", base+"/resets/"+failedJob.ID+":retry", map[string]any{}, &retried), 202)
	if retried.Total != 1 || len(retried.Users) != 1 || retried.Users[0].Extension != "4242" {
		t.Errorf("retry = %+v, want a job for 4242 alone", retried)
	} else if j := waitJob(t, tok, domain, retried.JobID); j.Status != "FAILED" {
		t.Errorf("retried job = %+v, want FAILED: 4242 does not exist", j)
	}

	// Recycle 1002 again under a new name, mail the new person, and finish setup.
	grace := "grace@" + domain + ".test"
	var rows struct {
		Results []struct{ Extension, Status, Email string }
	}
	expect("recycle", doIn(t, tok, "POST", base+"/recycles", map[string]any{"rows": []any{
		map[string]any{"extension": "1002", "firstName": "Grace", "lastName": "Hopper", "email": grace, "sendWelcomeEmail": true},
		map[string]any{"extension": "1001", "firstName": "Not", "lastName": "Reset", "email": "x@example.com"},
	}}, &rows), 200)
	if len(rows.Results) != 2 || rows.Results[0].Status != "recycled" || rows.Results[0].Email != "queued" || rows.Results[1].Status != "failed" {
		t.Errorf("recycle results = %+v, want 1002 recycled and mailed, 1001 (never reset) failed alone", rows.Results)
	}
	expect("recycle, no rows", doIn(t, tok, "POST", base+"/recycles", map[string]any{"rows": []any{}}, &e), 400)
	expect("bulk, welcome", doIn(t, tok, "POST", base+"/bulk-actions", map[string]any{"action": "send_welcome_email", "users": []string{"1002"}}, &rows), 200)
	expect("bulk, unknown action", doIn(t, tok, "POST", base+"/bulk-actions", map[string]any{"action": "delete_everything", "users": []string{"1002"}}, &e), 400)
	// Both mails to grace must have gone: the second link replaces the first.
	drainMail(t)
	_, link := newestLink(t, grace, &url.URL{})
	if status, _, _ := openPage(t, link); status != 200 {
		t.Errorf("setup page: %d", status)
	}
	if status, body := complete(t, link, "tangerine-sofa-42", "2580"); status != 200 {
		t.Errorf("setup: %d %s", status, body)
	}
	if status, _ := complete(t, link, "tangerine-sofa-42", "2580"); status != 400 {
		t.Errorf("setup with a used link: %d", status)
	}
	expect("bulk, force password reset", doIn(t, tok, "POST", base+"/bulk-actions", map[string]any{"action": "force_password_reset", "users": []string{"1002"}}, &rows), 200)

	// Offboardings: schedule, read, move, cancel, import.
	var off struct{ ID string }
	expect("schedule", doIn(t, tok, "POST", base+"/offboardings", map[string]any{"users": []string{"1005"}, "at": later.Format(time.RFC3339)}, &off), 201)
	expect("schedule in the past", doIn(t, tok, "POST", base+"/offboardings", map[string]any{"users": []string{"1006"}, "at": "2020-01-01T00:00:00Z"}, &e), 422)
	expect("offboardings", doIn(t, tok, "GET", base+"/offboardings?status=scheduled", nil, &struct{}{}), 200)
	expect("offboarding", doIn(t, tok, "GET", base+"/offboardings/"+off.ID, nil, &struct{}{}), 200)
	expect("move", doIn(t, tok, "PATCH", base+"/offboardings/"+off.ID, map[string]any{"at": later.Add(time.Hour).Format(time.RFC3339)}, &struct{}{}), 200)
	expect("cancel", doIn(t, tok, "DELETE", base+"/offboardings/"+off.ID, nil, &struct{}{}), 200)
	expect("no such offboarding", doIn(t, tok, "GET", base+"/offboardings/nosuch", nil, &e), 404)
	importReq, err := http.NewRequest("POST", stack.APIURL+base+"/offboardings:import", strings.NewReader("extension,at\n1006,"+later.Format(time.RFC3339)+"\n4242,"+later.Format(time.RFC3339)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	importReq.Header.Set("Authorization", "Bearer "+tok)
	importReq.Header.Set("Content-Type", "text/csv")
	importReq.Header.Set("Idempotency-Key", "import-"+domain)
	importResp, err := apiClient(t).Do(importReq)
	if err != nil {
		t.Fatal(err)
	}
	importResp.Body.Close()
	expect("import", importResp.StatusCode, 200)

	// Every documented refusal. Bodies over the API's 4 MiB: white space inside an object
	// that openapi.yaml takes.
	for _, r := range []struct {
		id, method, path, key, contentType string
		body                               []byte
	}{
		{"previewReset", "POST", base + "/resets:preview", "", "application/json", padded(t, map[string]any{"users": []string{"1004"}})},
		{"startReset", "POST", base + "/resets", rand.Text(), "application/json", padded(t, map[string]any{"users": []string{"1004"}, "confirm": true})},
		{"retryReset", "POST", base + "/resets/" + failedJob.ID + ":retry", rand.Text(), "application/json", padded(t, map[string]any{})},
		{"recycleUsers", "POST", base + "/recycles", rand.Text(), "application/json", padded(t, map[string]any{"rows": []any{row}})},
		{"bulkAction", "POST", base + "/bulk-actions", rand.Text(), "application/json", padded(t, map[string]any{"action": "send_welcome_email", "users": []string{"1004"}})},
		{"scheduleOffboarding", "POST", base + "/offboardings", rand.Text(), "application/json", padded(t, map[string]any{"users": []string{"1004"}, "at": later.Format(time.RFC3339)})},
		{"importOffboardings", "POST", base + "/offboardings:import", rand.Text(), "text/csv", append(csvOf("1004"), bytes.Repeat([]byte("\n"), 4<<20)...)},
		{"moveOffboarding", "PATCH", base + "/offboardings/" + off.ID, rand.Text(), "application/json", padded(t, map[string]any{"at": later.Format(time.RFC3339)})},
		{"completeSetup", "POST", "/v1/setup", "", "application/json", padded(t, map[string]any{"username": "x", "authCode": "y", "password": "tangerine-sofa-42"})},
	} {
		who := tok
		if r.id == "completeSetup" {
			who = "" // the setup link is the credential
		}
		expect(r.id+", body too large", sendRaw(t, who, r.method, r.path, r.contentType, r.key, r.body).status, http.StatusRequestEntityTooLarge)
	}

	// The same Idempotency-Key with another request.
	for _, r := range []struct {
		id, path, contentType string
		first, second         []byte
	}{
		{"recycleUsers", base + "/recycles", "application/json",
			jsonOf(t, map[string]any{"rows": []any{map[string]any{"extension": "4242", "firstName": "A", "lastName": "B", "email": "a@example.com"}}}),
			jsonOf(t, map[string]any{"rows": []any{map[string]any{"extension": "4243", "firstName": "A", "lastName": "B", "email": "a@example.com"}}})},
		{"bulkAction", base + "/bulk-actions", "application/json",
			jsonOf(t, map[string]any{"action": "send_welcome_email", "users": []string{"4242"}}),
			jsonOf(t, map[string]any{"action": "send_welcome_email", "users": []string{"4243"}})},
		{"importOffboardings", base + "/offboardings:import", "text/csv", csvOf("4242"), csvOf("4243")},
	} {
		key := rand.Text()
		expect(r.id, sendRaw(t, tok, "POST", r.path, r.contentType, key, r.first).status, 200)
		expect(r.id+", same key, other body", sendRaw(t, tok, "POST", r.path, r.contentType, key, r.second).status, 422)
	}

	// Malformed requests, things that do not exist, and rules.
	expect("retry, a body other than {}", doIn(t, tok, "POST", base+"/resets/"+failedJob.ID+":retry", map[string]any{"again": true}, &e), 400)
	expect("schedule, no key", doWithKey(t, tok, "POST", base+"/offboardings", "", map[string]any{"users": []string{"1004"}, "at": later.Format(time.RFC3339)}, &e), 400)
	expect("import, no key", sendRaw(t, tok, "POST", base+"/offboardings:import", "text/csv", "", csvOf("1004")).status, 400)
	expect("offboardings, unknown status", doIn(t, tok, "GET", base+"/offboardings?status=pending", nil, &e), 400)
	expect("move, not a time", doIn(t, tok, "PATCH", base+"/offboardings/"+off.ID, map[string]any{"at": "tomorrow"}, &e), 400)
	expect("move, into the past", doIn(t, tok, "PATCH", base+"/offboardings/"+off.ID, map[string]any{"at": "2020-01-01T00:00:00Z"}, &e), 422)
	expect("move, cancelled", doIn(t, tok, "PATCH", base+"/offboardings/"+off.ID, map[string]any{"at": later.Format(time.RFC3339)}, &e), 409)
	expect("move, no such offboarding", doIn(t, tok, "PATCH", base+"/offboardings/nosuch", map[string]any{"at": later.Format(time.RFC3339)}, &e), 404)
	expect("cancel, no such offboarding", doIn(t, tok, "DELETE", base+"/offboardings/nosuch", nil, &e), 404)
	if a := sendRaw(t, "", "GET", "/portal/resets?auth_code=nope&username=bm9wZQ%3D%3D", "", "", nil); a.status != 400 {
		t.Errorf("setup page of a link that is not valid: %d", a.status)
	}
	// Failed setups are counted per username: the eleventh attempt within 15 minutes
	// is refused before the link is looked at.
	guess := jsonOf(t, map[string]any{"username": setup.Username("4242", domain), "authCode": strings.Repeat("A", 43), "password": "tangerine-sofa-42"})
	for i := range 10 {
		expect(fmt.Sprintf("setup, guess %d", i+1), sendRaw(t, "", "POST", "/v1/setup", "application/json", "", guess).status, 400)
	}
	expect("setup, one guess too many", sendRaw(t, "", "POST", "/v1/setup", "application/json", "", guess).status, 429)
	setupPage := "/portal/resets?auth_code=" + strings.Repeat("A", 43) + "&username=" + url.QueryEscape(setup.Username("4242", domain))
	expect("setup page, one guess too many", sendRaw(t, "", "GET", setupPage, "", "", nil).status, 429)

	// An offboarding whose time came, as the schedule starts it, can no longer be cancelled.
	var started struct{ ID string }
	expect("schedule", doIn(t, tok, "POST", base+"/offboardings", map[string]any{"users": []string{"1007"}, "at": later.Format(time.RFC3339)}, &started), 201)
	startOffboarding(t, domain, started.ID)
	expect("cancel, started", doIn(t, tok, "DELETE", base+"/offboardings/"+started.ID, nil, &e), 409)

	// Every route under a domain: without a token, with a token that may act on no
	// domain, and for a {domain} that is not a domain name.
	cases := domainOperations(jobID, off.ID, off.ID, later)
	ops := casesFor(t, cases)
	basic := token(t, domain, "basic_user")
	opRequest := func(op domainOperation, tok, domain string) answer {
		body, ct := cases[op.id].encode(t, 0)
		key := ""
		if op.method == "POST" || op.method == "PATCH" {
			key = rand.Text()
		}
		return sendRaw(t, tok, op.method, "/v1/domains/"+domain+cases[op.id].path, ct, key, body)
	}
	for _, op := range ops {
		expect(op.id+", no token", opRequest(op, "", domain).status, 401)
		expect(op.id+", basic user", opRequest(op, basic, domain).status, 403)
		expect(op.id+", not a domain", opRequest(op, tok, "Not_A_Domain").status, 400)
	}

	for id, c := range held {
		expect(id+", key held by a request still in flight", (<-c).status, 409)
	}

	// Failures on our side: every DynamoDB call fails, once the mail queued above has
	// gone and nothing else is under way.
	drainMail(t)
	failingDynamoDB(t, func() {
		for _, op := range ops {
			expect(op.id+", DynamoDB failing", opRequest(op, tok, domain).status, 500)
		}
		expect("setup, DynamoDB failing", sendRaw(t, "", "POST", "/v1/setup", "application/json", "", jsonOf(t, map[string]any{
			"username": setup.Username("4243", domain), "authCode": strings.Repeat("A", 43), "password": "tangerine-sofa-42"})).status, 500)
	})

	checkEveryResponseSeen(t, seenSince(before))
}

// unproducible are the answers openapi.yaml documents that the local stack cannot give,
// by operationId ("*": every operation) and response, each with the reason.
var unproducible = []struct{ op, response, why string }{
	{"*", "default", "API Gateway's own answers, 429 when it throttles and 503 when the function does not answer in time: " +
		"the local stack never throttles, and it answers 503 only after the api function's 30 s timeout"},
}

// checkEveryResponseSeen fails for every response of every operation of openapi.yaml
// that seen (statuses by operationId) lacks and unproducible does not excuse, and for
// every excuse of a single operation that is not needed.
func checkEveryResponseSeen(t *testing.T, seen map[string]map[int]int) {
	t.Helper()
	doc, _, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	excused := func(op, response string) bool {
		return slices.ContainsFunc(unproducible, func(u struct{ op, response, why string }) bool {
			return (u.op == op || u.op == "*") && u.response == response
		})
	}
	ops := map[string]bool{}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			id := op.OperationID
			ops[id] = true
			statuses := seen[id]
			t.Logf("%s: %v", id, statuses)
			documented := op.Responses.Map()
			for _, response := range slices.Sorted(maps.Keys(documented)) {
				got := false
				if response == "default" { // any status the operation does not list
					for status := range statuses {
						if documented[strconv.Itoa(status)] == nil {
							got = true
						}
					}
				} else if status, err := strconv.Atoi(response); err == nil {
					got = statuses[status] > 0
				} else {
					t.Errorf("%s %s (%s) documents %q: this test knows statuses and default only", method, path, id, response)
					continue
				}
				switch {
				case !got && !excused(id, response):
					t.Errorf("%s %s (%s) documents a %s answer that no request here got: send one that does, "+
						"or add it to unproducible with the reason the local stack cannot give it", method, path, id, response)
				case got && slices.ContainsFunc(unproducible, func(u struct{ op, response, why string }) bool { return u.op == id && u.response == response }):
					t.Errorf("%s (%s) is in unproducible, yet a request got it: take it out", id, response)
				}
			}
		}
	}
	for _, u := range unproducible {
		if u.op != "*" && !ops[u.op] {
			t.Errorf("unproducible names %s, which openapi.yaml does not have", u.op)
		}
	}
}

// seenSince is what exercised has counted since before, a copy of it.
func seenSince(before map[string]map[int]int) map[string]map[int]int {
	exercised.Lock()
	defer exercised.Unlock()
	out := map[string]map[int]int{}
	for id, statuses := range exercised.ops {
		for status, n := range statuses {
			if d := n - before[id][status]; d > 0 {
				if out[id] == nil {
					out[id] = map[int]int{}
				}
				out[id][status] = d
			}
		}
	}
	return out
}

// jsonOf is v as JSON.
func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// padded is the JSON object v with white space inside it, past the API's 4 MiB limit.
func padded(t *testing.T, v map[string]any) []byte {
	t.Helper()
	b := jsonOf(t, v)
	return append(append(b[:len(b)-1:len(b)-1], bytes.Repeat([]byte(" "), 4<<20)...), '}')
}

// inFlight sends a request whose Idempotency-Key is held by an earlier request with
// the same route and body that has not finished, as one under way on another instance
// would: the API waits 10 s for it, then answers. It claims the key as the API does
// (the hash of the route and of the body without white space), then sends the request.
func inFlight(t *testing.T, tok, domain, method, path, contentType string, body []byte) <-chan answer {
	t.Helper()
	var compact bytes.Buffer
	if json.Compact(&compact, body) != nil {
		compact.Reset()
		compact.Write(body)
	}
	hash := sha256.Sum256([]byte(method + " " + path + "\n" + compact.String()))
	key := rand.Text()
	if rec, err := store().ClaimIdempotencyKey(context.Background(), domain, key, hex.EncodeToString(hash[:]), time.Minute); err != nil || rec != nil {
		t.Fatalf("claim an Idempotency-Key: %+v, %v", rec, err)
	}
	out := make(chan answer, 1)
	go func() { out <- sendRaw(t, tok, method, path, contentType, key, body) }()
	return out
}

// startOffboarding starts an offboarding as the schedule does when its time has come,
// with a finished job.
func startOffboarding(t *testing.T, domain, id string) {
	t.Helper()
	ctx := context.Background()
	o, err := store().GetOffboarding(ctx, domain, id)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := store().ClaimOffboarding(ctx, o, o.At.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("claim offboarding %s: %t, %v", id, ok, err)
	}
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: turnover.OffboardingJobID(id), Status: turnover.JobSucceeded, Total: len(o.Users), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ok, err := store().MarkOffboardingStarted(ctx, o); !ok || err != nil {
		t.Fatalf("mark offboarding %s started: %t, %v", id, ok, err)
	}
}

// drainMail waits until the mail queue is empty and the mailer idle.
func drainMail(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stack.DrainQueues(ctx); err != nil {
		t.Fatal(err)
	}
}

// failingDynamoDB runs f while every DynamoDB call crossing the front door fails with
// an error the SDK does not retry.
func failingDynamoDB(t *testing.T, f func()) {
	t.Helper()
	previous := stack.Faults()
	stack.SetFaults(localstack.FaultFunc(func(c localstack.Call) *localstack.Fault {
		if c.Service == "dynamodb" {
			return &localstack.Fault{Status: http.StatusBadRequest, Code: "ValidationException", Message: "Failed by TestEveryDocumentedOperation."}
		}
		if previous != nil {
			return previous.Inject(c)
		}
		return nil
	}))
	defer stack.SetFaults(previous)
	f()
}
