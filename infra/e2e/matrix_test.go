package e2e_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"turnover/infra/localstack"
)

// The authorization matrix: every route under /v1/domains/{domain} in openapi.yaml × a
// domain the caller owns, another tenant's domain and a domain that does not exist ×
// every kind of caller. Refused requests get 401 or 403 and, like every request that
// does not succeed, change nothing at all: no item, no object, no queued mail, no
// execution.

type caller struct {
	name  string
	token func(own string) string // "" for no token
	// may says whether the caller may act on the domain of that kind.
	may func(kind string) bool
}

// opCase is the request the matrix sends for one operation, and the status a caller
// that may act on the domain gets for it.
type opCase struct {
	// path is the request's path after /v1/domains/{domain}, its other values filled in.
	path string
	// contentType is the body's type; "" is application/json.
	contentType string
	// body returns the body of the n-th request of this operation that is to succeed
	// (from 0; requests that are not get n = 0): a string is sent as it is, anything
	// else as JSON. Nil sends no body.
	body func(n int) any
	// own, foreign and unknown are the statuses in the caller's own domain, in another
	// tenant's domain (the same demo users, none of the own domain's jobs or
	// offboardings) and in a domain that does not exist.
	own, foreign, unknown int
}

// encode is the body of the n-th request of c, and its content type.
func (c opCase) encode(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	if c.body == nil {
		return nil, ""
	}
	ct := c.contentType
	if ct == "" {
		ct = "application/json"
	}
	switch b := c.body(n).(type) {
	case string:
		return []byte(b), ct
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return raw, ct
	}
}

// domainOperations is, by operationId, the request to send for every operation under
// /v1/domains/{domain}. job is a finished job of the own domain with no failed user;
// scheduled an offboarding of it that stays scheduled; cancellable one that requests may
// cancel; at a time to schedule offboardings at. A new route in openapi.yaml needs its
// entry here: the matrix fails until it has one.
func domainOperations(job, scheduled, cancellable string, at time.Time) map[string]opCase {
	fixed := func(v any) func(int) any { return func(int) any { return v } }
	// A user can be in one pending offboarding only: each request that is to succeed
	// names its own. 1000 and 1001 are in the fixtures' offboardings, 1003 is the
	// office manager, 1007 is imported.
	free := []string{"1004", "1005", "1006", "1009", "1002"}
	return map[string]opCase{
		"listUsers":       {path: "/users", own: 200, foreign: 200, unknown: 200},
		"getUser":         {path: "/users/1002", own: 200, foreign: 200, unknown: 404},
		"lookupDirectory": {path: "/directory?digits=3793", own: 200, foreign: 200, unknown: 200},
		"listNumbers":     {path: "/numbers", own: 200, foreign: 200, unknown: 200},
		"listPhones":      {path: "/phones", own: 200, foreign: 200, unknown: 200},
		"previewReset": {path: "/resets:preview", body: fixed(map[string]any{"users": []string{"1002"}}),
			own: 200, foreign: 200, unknown: 200},
		"startReset": {path: "/resets", body: fixed(map[string]any{"users": []string{"1002"}, "options": map[string]any{}, "confirm": true}),
			own: 202, foreign: 202, unknown: 422},
		"getReset":       {path: "/resets/" + job, own: 200, foreign: 404, unknown: 404},
		"getResetReport": {path: "/resets/" + job + "/report.csv", own: 200, foreign: 404, unknown: 404},
		"retryReset":     {path: "/resets/" + job + ":retry", own: 422, foreign: 404, unknown: 404},
		"recycleUsers": {path: "/recycles", body: fixed(map[string]any{"rows": []any{map[string]any{
			"extension": "1007", "firstName": "Ann", "lastName": "Lee", "email": "ann.lee@example.com", "sendWelcomeEmail": true}}}),
			own: 200, foreign: 200, unknown: 200},
		"bulkAction": {path: "/bulk-actions", body: fixed(map[string]any{"action": "send_welcome_email", "users": []string{"1002"}}),
			own: 200, foreign: 200, unknown: 200},
		"scheduleOffboarding": {path: "/offboardings", body: func(n int) any {
			return map[string]any{"users": []string{free[n%len(free)]}, "at": at.Format(time.RFC3339)}
		}, own: 201, foreign: 201, unknown: 422},
		"importOffboardings": {path: "/offboardings:import", contentType: "text/csv",
			body: fixed("extension,at\n1007," + at.Format(time.RFC3339) + "\n"), own: 200, foreign: 200, unknown: 200},
		"listOffboardings": {path: "/offboardings", own: 200, foreign: 200, unknown: 200},
		"getOffboarding":   {path: "/offboardings/" + scheduled, own: 200, foreign: 404, unknown: 404},
		"moveOffboarding": {path: "/offboardings/" + scheduled, body: fixed(map[string]any{"at": at.Add(24 * time.Hour).Format(time.RFC3339)}),
			own: 200, foreign: 404, unknown: 404},
		"cancelOffboarding": {path: "/offboardings/" + cancellable, own: 200, foreign: 404, unknown: 404},
	}
}

// domainOperation is one operation of openapi.yaml under /v1/domains/{domain}.
type domainOperation struct {
	id, method, path string
}

// specDomainOperations lists the operations of openapi.yaml under /v1/domains/{domain},
// in a stable order.
func specDomainOperations(t *testing.T) []domainOperation {
	t.Helper()
	doc, _, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	var out []domainOperation
	for _, path := range doc.Paths.InMatchingOrder() {
		if !strings.HasPrefix(path, "/v1/domains/{domain}/") {
			continue
		}
		for method, op := range doc.Paths.Value(path).Operations() {
			out = append(out, domainOperation{op.OperationID, method, path})
		}
	}
	slices.SortFunc(out, func(a, b domainOperation) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return out
}

// casesFor pairs every domain operation of openapi.yaml with its case. It fails for an
// operation without a case, saying what to add, and for a case whose operation
// openapi.yaml no longer has or whose request openapi.yaml routes elsewhere.
func casesFor(t *testing.T, cases map[string]opCase) []domainOperation {
	t.Helper()
	ops := specDomainOperations(t)
	_, router, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	var known []domainOperation
	for _, op := range ops {
		c, ok := cases[op.id]
		if !ok {
			suffix := strings.TrimPrefix(op.path, "/v1/domains/{domain}")
			t.Errorf("openapi.yaml has %s %s (%s), but the authorization matrix has no expectation for it: add an expectation for operation %s "+
				"to domainOperations in infra/e2e/matrix_test.go, such as\n\t%q: {path: %q, own: 200, foreign: 200, unknown: 200},\n"+
				"with the path values, body (and contentType) to send, and the status a caller that may act on the domain gets in its own domain, "+
				"in another tenant's domain and in a domain that does not exist", op.method, op.path, op.id, op.id, op.id, suffix)
			continue
		}
		req, err := http.NewRequest(op.method, stack.APIURL+"/v1/domains/matrix"+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if route, _, err := router.FindRoute(req); err != nil || route.Operation.OperationID != op.id {
			t.Errorf("the case of %s sends %s %s, which openapi.yaml does not route to %s (%v)", op.id, op.method, c.path, op.id, err)
			continue
		}
		known = append(known, op)
	}
	for id := range cases {
		if !slices.ContainsFunc(ops, func(op domainOperation) bool { return op.id == id }) {
			t.Errorf("domainOperations has a case for %s, which openapi.yaml does not have under /v1/domains/{domain}: remove it", id)
		}
	}
	return known
}

func TestAuthorizationMatrix(t *testing.T) {
	own, other := freshDomain(t, "matrix"), freshDomain(t, "matrixother")
	const unknown = "nosuchdomain"
	kinds := []string{"own", "foreign", "unknown"}
	domains := map[string]string{"own": own, "foreign": other, "unknown": unknown}
	manager := tokenFor(t, own)

	// Fixtures of the owning domain: a finished job, an offboarding that stays
	// scheduled and one to cancel, far enough ahead that no test's schedule fires them.
	done := runResetIn(t, manager, own, map[string]any{"users": []string{"1007"}, "options": map[string]any{}, "confirm": true})
	at := time.Now().Add(300 * 24 * time.Hour).UTC().Truncate(time.Second)
	var scheduled, cancellable struct{ ID string }
	for ext, o := range map[string]*struct{ ID string }{"1000": &scheduled, "1001": &cancellable} {
		if status := doIn(t, manager, "POST", "/v1/domains/"+own+"/offboardings", map[string]any{"users": []string{ext}, "at": at.Format(time.RFC3339)}, o); status != 201 || o.ID == "" {
			t.Fatalf("schedule the offboarding of %s: %d %+v", ext, status, o)
		}
	}
	cases := domainOperations(done.JobID, scheduled.ID, cancellable.ID, at)
	ops := casesFor(t, cases)

	mint := func(c localstack.TokenClaims) string {
		tok, err := stack.Token(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	scoped := func(ext, scope string) func(string) string {
		return func(o string) string {
			return mint(localstack.TokenClaims{Subject: ext + "@" + o, Domain: o, Scope: scope})
		}
	}
	never := func(string) bool { return false }
	callers := []caller{
		{"office manager", scoped("1003", "office_manager"), func(k string) bool { return k == "own" }},
		{"reseller of the domain", func(o string) string {
			return mint(localstack.TokenClaims{Subject: "r@resellers", Domain: "resellers", Scope: "reseller", Domains: []string{"elsewhere", o}})
		}, func(k string) bool { return k == "own" }},
		{"reseller of others", func(string) string {
			return mint(localstack.TokenClaims{Subject: "r@resellers", Domain: "resellers", Scope: "reseller", Domains: []string{"elsewhere"}})
		}, never},
		{"super user", func(string) string {
			return mint(localstack.TokenClaims{Subject: "root@ops", Domain: "ops", Scope: "super_user"})
		}, func(string) bool { return true }},
		{"basic user", scoped("1002", "basic_user"), never},
		{"call center agent", scoped("1004", "call_center_agent"), never},
		{"call center supervisor", scoped("1000", "call_center_supervisor"), never},
		{"no token", func(string) string { return "" }, never},
	}

	type request struct {
		name, tok, method, path, contentType string
		body                                 []byte
		want                                 int
		domain                               string
	}
	var refused, allowed []request
	succeeding := map[string]int{} // by operationId: requests built so far that are to succeed
	for _, c := range callers {
		tok := c.token(own)
		for _, kind := range kinds {
			for _, op := range ops {
				oc := cases[op.id]
				want := map[string]int{"own": oc.own, "foreign": oc.foreign, "unknown": oc.unknown}[kind]
				switch {
				case tok == "":
					want = http.StatusUnauthorized
				case !c.may(kind):
					want = http.StatusForbidden
				}
				n := 0
				if want/100 == 2 {
					n = succeeding[op.id]
					succeeding[op.id]++
				}
				body, ct := oc.encode(t, n)
				r := request{fmt.Sprintf("%s on %s: %s %s (%s)", c.name, kind, op.method, oc.path, op.id), tok, op.method,
					"/v1/domains/" + domains[kind] + oc.path, ct, body, want, domains[kind]}
				if want/100 == 2 {
					allowed = append(allowed, r)
				} else {
					refused = append(refused, r)
				}
			}
		}
	}
	try := func(r request) answer {
		t.Helper()
		key := ""
		if (r.method == "POST" || r.method == "PATCH") && !strings.HasSuffix(r.path, ":preview") {
			key = rand.Text()
		}
		a := sendRaw(t, r.tok, r.method, r.path, r.contentType, key, r.body)
		if a.status != r.want {
			t.Errorf("%s: %d %s, want %d", r.name, a.status, clip(a.body), r.want)
		}
		return a
	}

	// A request that is not to succeed (a caller who may not, and the 404s and 422s of
	// one who may) changes nothing: no item or object, no mail queued, no execution.
	sideEffects := []string{"sqs.SendMessage", "sqs.SendMessageBatch", "states.StartExecution"}
	before, calls := snapshotAll(t), stack.Calls()
	for _, r := range refused {
		try(r)
	}
	if c := changes(before, snapshotAll(t)); len(c) != 0 {
		t.Errorf("%d refused requests changed:\n  %s", len(refused), strings.Join(c, "\n  "))
	}
	after := stack.Calls()
	for _, call := range sideEffects {
		if after[call] != calls[call] {
			t.Errorf("%d refused requests made %d %s calls", len(refused), after[call]-calls[call], call)
		}
	}

	jobs := map[string]string{} // started job → its domain
	for _, r := range allowed {
		a := try(r)
		var out struct {
			JobID string `json:"jobId"`
		}
		if a.status == http.StatusAccepted && json.Unmarshal(a.body, &out) == nil && out.JobID != "" {
			jobs[out.JobID] = r.domain
		}
	}
	// Allowed requests do what refused ones did not: proof that the counts above watch
	// the right calls.
	final := stack.Calls()
	for _, call := range []string{"sqs.SendMessageBatch", "states.StartExecution"} {
		if final[call] == after[call] {
			t.Errorf("no allowed request made a %s call: the check of refused requests watches nothing", call)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(jobs)) { // let the started jobs finish before other tests look
		waitJob(t, tokenFor(t, jobs[id]), jobs[id], id)
	}
	if want := len(callers) * len(kinds) * len(cases); len(refused)+len(allowed) != want {
		t.Errorf("the matrix is thin: %d refused and %d allowed requests, want %d", len(refused), len(allowed), want)
	}
}
