package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"turnover/internal/api"
	"turnover/internal/reset"
	"turnover/internal/s3store"
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

// exercised counts, by operationId and status, the exchanges whose request and answer
// both matched openapi.yaml.
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
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode >= 500) {
		c.t.Errorf("%s: openapi.yaml refuses the request, yet the API answered %d: %v", name, resp.StatusCode, reqErr)
	}
	if reqErr == nil && respErr == nil {
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
// succeed and some that fail, then checks that each operation has had an exchange that
// succeeded and matched the file.
func TestEveryDocumentedOperation(t *testing.T) {
	ctx := context.Background()
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
	later := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
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

	doc, _, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	exercised.Lock()
	defer exercised.Unlock()
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			statuses := exercised.ops[op.OperationID]
			t.Logf("%s: %v", op.OperationID, statuses)
			if !slices.ContainsFunc(slices.Collect(maps.Keys(statuses)), func(s int) bool { return s/100 == 2 }) {
				t.Errorf("%s %s (%s) never succeeded with a request and answer that match openapi.yaml: %v", method, path, op.OperationID, statuses)
			}
		}
	}
}
