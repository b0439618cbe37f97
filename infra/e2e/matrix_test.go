package e2e_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"turnover/infra/localstack"
)

// The authorization matrix: every route × a domain the caller owns, another tenant's
// domain and a domain that does not exist × every kind of caller. Refused requests get
// 401 or 403 and change nothing at all, item for item and object for object.

type caller struct {
	name  string
	token func(own string) string // "" for no token
	// may says whether the caller may act on the domain of that kind.
	may func(kind string) bool
}

type route struct {
	method, path string // path after /v1/domains/{domain}
	body         any
	// ok is the status an allowed caller gets in a domain of that kind.
	ok func(kind string) int
}

func TestAuthorizationMatrix(t *testing.T) {
	own, other := freshDomain(t, "matrix"), freshDomain(t, "matrixother")
	const unknown = "nosuchdomain"
	domains := map[string]string{"own": own, "foreign": other, "unknown": unknown}

	// A finished job of the owning domain, for the job routes.
	done := runResetIn(t, tokenFor(t, own), own, map[string]any{"users": []string{"1007"}, "options": map[string]any{}, "confirm": true})

	mint := func(c localstack.TokenClaims) string {
		tok, err := stack.Token(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	callers := []caller{
		{"office manager", func(o string) string {
			return mint(localstack.TokenClaims{Subject: "1003@" + o, Domain: o, Scope: "office_manager"})
		}, func(k string) bool { return k == "own" }},
		{"reseller of the domain", func(o string) string {
			return mint(localstack.TokenClaims{Subject: "r@resellers", Domain: "resellers", Scope: "reseller", Domains: []string{"elsewhere", o}})
		}, func(k string) bool { return k == "own" }},
		{"reseller of others", func(string) string {
			return mint(localstack.TokenClaims{Subject: "r@resellers", Domain: "resellers", Scope: "reseller", Domains: []string{"elsewhere"}})
		}, func(string) bool { return false }},
		{"super user", func(string) string {
			return mint(localstack.TokenClaims{Subject: "root@ops", Domain: "ops", Scope: "super_user"})
		}, func(string) bool { return true }},
		{"basic user", func(o string) string {
			return mint(localstack.TokenClaims{Subject: "1002@" + o, Domain: o, Scope: "basic_user"})
		}, func(string) bool { return false }},
		{"supervisor", func(o string) string {
			return mint(localstack.TokenClaims{Subject: "1000@" + o, Domain: o, Scope: "call_center_supervisor"})
		}, func(string) bool { return false }},
		{"no token", func(string) string { return "" }, func(string) bool { return false }},
	}
	// Both the own and the foreign domain hold the demo users; only the own domain
	// holds the job.
	users := func(withUsers, without int) func(string) int {
		return func(kind string) int {
			if kind == "unknown" {
				return without
			}
			return withUsers
		}
	}
	ownJob := func(inOwn, elsewhere int) func(string) int {
		return func(kind string) int {
			if kind == "own" {
				return inOwn
			}
			return elsewhere
		}
	}
	routes := []route{
		{"GET", "/users", nil, users(200, 200)},
		{"GET", "/users/1002", nil, users(200, 404)},
		{"GET", "/directory?digits=3793", nil, users(200, 200)},
		{"GET", "/numbers", nil, users(200, 200)},
		{"POST", "/resets:preview", map[string]any{"users": []string{"1002"}}, users(200, 200)},
		{"GET", "/resets/" + done.JobID, nil, ownJob(200, 404)},
		{"GET", "/resets/" + done.JobID + "/report.csv", nil, ownJob(200, 404)},
		{"POST", "/resets/" + done.JobID + ":retry", nil, ownJob(422, 404)},
		{"POST", "/resets", map[string]any{"users": []string{"1002"}, "options": map[string]any{}, "confirm": true}, users(202, 422)},
	}

	type request struct {
		name, tok, method, path string
		body                    any
		want                    int
	}
	var refused, allowed []request
	for _, c := range callers {
		for kind, domain := range domains {
			for _, r := range routes {
				tok := c.token(own)
				want := r.ok(kind)
				switch {
				case tok == "":
					want = http.StatusUnauthorized
				case !c.may(kind):
					want = http.StatusForbidden
				}
				req := request{fmt.Sprintf("%s on %s: %s %s", c.name, kind, r.method, r.path), tok, r.method, "/v1/domains/" + domain + r.path, r.body, want}
				if want/100 == 2 {
					allowed = append(allowed, req)
				} else {
					refused = append(refused, req)
				}
			}
		}
	}
	send := func(r request) int {
		if strings.HasSuffix(r.path, ".csv") {
			return getRaw(t, r.tok, r.path)
		}
		var out any
		return doIn(t, r.tok, r.method, r.path, r.body, &out)
	}

	before := snapshotAll(t)
	for _, r := range refused {
		if got := send(r); got != r.want {
			t.Errorf("%s: %d, want %d", r.name, got, r.want)
		}
	}
	if c := changes(before, snapshotAll(t)); len(c) != 0 {
		t.Errorf("%d refused requests changed:\n  %s", len(refused), strings.Join(c, "\n  "))
	}

	var jobs []string
	for _, r := range allowed {
		var out struct {
			JobID string `json:"jobId"`
		}
		var got int
		if strings.HasSuffix(r.path, ".csv") {
			got = getRaw(t, r.tok, r.path)
		} else {
			got = doIn(t, r.tok, r.method, r.path, r.body, &out)
		}
		if got != r.want {
			t.Errorf("%s: %d, want %d", r.name, got, r.want)
		}
		if out.JobID != "" && !slices.Contains(jobs, out.JobID) {
			jobs = append(jobs, out.JobID)
		}
	}
	for _, id := range jobs { // let the started jobs finish before other tests look
		for _, d := range []string{own, other} {
			if getRaw(t, tokenFor(t, d), "/v1/domains/"+d+"/resets/"+id) == 200 {
				waitJob(t, tokenFor(t, d), d, id)
			}
		}
	}
	if len(refused) < 100 || len(allowed) < 20 {
		t.Errorf("the matrix is thin: %d refused, %d allowed", len(refused), len(allowed))
	}
}

// getRaw sends a GET whose answer is not JSON and returns its status.
func getRaw(t *testing.T, tok, path string) int {
	t.Helper()
	req, err := http.NewRequest("GET", stack.APIURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
