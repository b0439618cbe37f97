package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"turnover/internal/turnover"
)

// force_password_reset voids every user's link; with sendRecoveryEmail a user who has
// finished setup gets a recovery link, and one who has not a welcome link, which asks
// for a PIN too, and the result says so.
func TestForcePasswordResetMailsWhatTheUserNeeds(t *testing.T) {
	for _, tt := range []struct {
		name      string
		recovery  bool
		wantEmail map[string]string
		wantMail  map[string]turnover.LinkPurpose
	}{
		{"with mail", true, map[string]string{"1002": "queued", "1005": "queued_welcome"},
			map[string]turnover.LinkPurpose{"1002": turnover.LinkRecovery, "1005": turnover.LinkWelcome}},
		{"without mail", false, map[string]string{"1002": "not_requested", "1005": "not_requested"}, map[string]turnover.LinkPurpose{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			u := w.f.users["niftywidgets/1002"]
			u.VoicemailPINHash = "plain:1357"
			w.f.users["niftywidgets/1002"] = u
			u = w.f.users["niftywidgets/1005"]
			u.Email = "ann@example.com"
			w.f.users["niftywidgets/1005"] = u
			body, _ := json.Marshal(map[string]any{"action": "force_password_reset", "users": []string{"1002", "1005"}, "sendRecoveryEmail": tt.recovery})
			a := w.send(t, "POST", "/v1/domains/niftywidgets/bulk-actions", "application/json", string(body))
			var res struct {
				Results []struct{ Extension, Status, Email string }
			}
			if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &res) != nil || len(res.Results) != 2 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			for _, r := range res.Results {
				if r.Status != "done" || r.Email != tt.wantEmail[r.Extension] {
					t.Errorf("%s: %s, email %q; want done, %q", r.Extension, r.Status, r.Email, tt.wantEmail[r.Extension])
				}
			}
			got := map[string]turnover.LinkPurpose{}
			for _, m := range w.f.mail {
				got[m.Extension] = m.Purpose
			}
			if len(got) != len(tt.wantMail) || got["1002"] != tt.wantMail["1002"] || got["1005"] != tt.wantMail["1005"] {
				t.Errorf("queued %v, want %v", got, tt.wantMail)
			}
			if _, ok := w.f.links["niftywidgets/1005"]; ok {
				t.Errorf("1005's link outlived the forced reset")
			}
		})
	}
}

// The setup page counts failed openings as POST /v1/setup counts failed setups: past the
// limit it answers 429, and so does the setup itself, good token or not.
func TestSetupPageIsRateLimited(t *testing.T) {
	w := newWorld()
	page := func(token string) int {
		return w.send(t, "GET", "/portal/resets?"+url.Values{"auth_code": {token}, "username": {fuzzUsername}}.Encode(), "", "").status
	}
	for range 3 {
		if status := page(fuzzToken); status != http.StatusOK {
			t.Fatalf("the live link: %d", status)
		}
	}
	for i := range 10 {
		if status := page(strings.Repeat("A", 43)); status != http.StatusBadRequest {
			t.Fatalf("bad token %d: %d, want 400", i+1, status)
		}
	}
	if status := page(fuzzToken); status != http.StatusTooManyRequests {
		t.Errorf("the live link after 10 failed openings: %d, want 429", status)
	}
	if a := w.send(t, "POST", "/v1/setup", "application/json", setupBody(fuzzUsername, fuzzToken, "correct horse battery", "2580")); a.status != http.StatusTooManyRequests {
		t.Errorf("setup after 10 failed openings: %d %s, want 429", a.status, a.body)
	}
}
