package api_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestListPhones(t *testing.T) {
	f := newFake()
	status, body := call(t, f, "GET", "/v1/domains/niftywidgets/phones", "", manager("niftywidgets"))
	if status != 200 {
		t.Fatalf("status %d body %v", status, body)
	}
	// A phone with no lines left is still listed, with "lines": [] rather than null.
	want := `{"phones":[` +
		`{"label":"Desk 1002","lines":[],"mac":"00:04:f2:00:10:02","model":"Poly VVX 450"},` +
		`{"label":"Operations conference room","lines":["1001","1006"],"mac":"00:04:f2:00:20:01","model":"Poly Trio 8800"}]}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Errorf("body = %s\nwant   %s", got, want)
	}

	status, body = call(t, f, "GET", "/v1/domains/other/phones", "", manager("other"))
	if got, _ := json.Marshal(body); status != 200 || string(got) != `{"phones":[]}` {
		t.Errorf("a domain without phones: %d %s, want 200 with an empty list", status, got)
	}
}

func TestListPhonesRefusals(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		claims map[string]string
		status int
		code   string
	}{
		{"no identity", "/v1/domains/niftywidgets/phones", nil, 401, "unauthorized"},
		{"another domain's manager", "/v1/domains/niftywidgets/phones", manager("other"), 403, "forbidden"},
		{"basic user", "/v1/domains/niftywidgets/phones", map[string]string{"sub": "1002@niftywidgets", "domain": "niftywidgets", "scope": "basic_user"}, 403, "forbidden"},
		{"not a domain", "/v1/domains/Not_A_Domain/phones", manager("niftywidgets"), 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			status, body := call(t, f, "GET", tt.path, "", tt.claims)
			if status != tt.status || errorCode(t, body) != tt.code {
				t.Errorf("status %d body %v, want %d %s", status, body, tt.status, tt.code)
			}
			if f.calls != 0 {
				t.Errorf("a refused request read the store %d times", f.calls)
			}
		})
	}
}

func TestListPhonesStoreFailure(t *testing.T) {
	f := newFake()
	f.fail = errors.New("dynamodb: index gsi1 secret detail")
	status, body := call(t, f, "GET", "/v1/domains/niftywidgets/phones", "", manager("niftywidgets"))
	if status != 500 || errorCode(t, body) != "internal" {
		t.Fatalf("status %d body %v, want 500 internal", status, body)
	}
	if msg, _ := body["error"].(map[string]any)["message"].(string); msg == "" || strings.Contains(msg, "secret") || strings.Contains(msg, "dynamodb") || strings.Contains(msg, "gsi1") {
		t.Errorf("message %q is empty or leaks internals", msg)
	}
}
