package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"turnover/internal/api"
	"turnover/internal/turnover"
)

// offboardingServer serves the API over f with the clock standing at now, the caller
// being niftywidgets' office manager (1003).
func offboardingServer(f *fake, now time.Time) http.Handler {
	srv := &api.Server{
		Users: f, Jobs: f, Manifests: f, Executions: f, Idempotency: f, Accounts: f, Offboardings: f, Mail: f,
		BatchSize: 2,
		Log:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Identity: func(*http.Request) (turnover.Identity, bool) {
			return turnover.Identity{Subject: "1003@niftywidgets", Domain: "niftywidgets", Scope: turnover.ScopeOfficeManager}, true
		},
		Now: func() time.Time { return now },
	}
	return srv.Handler()
}

var keySeq atomic.Int64

// serveOffboarding sends one request with a fresh Idempotency-Key and returns the status and body.
func serveOffboarding(t *testing.T, h http.Handler, method, target, contentType, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%d", keySeq.Add(1)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestOffboardingAtMostAYearAhead(t *testing.T) {
	// From 2026-11-22 a year is 365 days; from 2027-06-01 it is 366, as February 2028
	// has a 29th.
	plain := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	leap := time.Date(2027, 6, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		at   string
		want int
	}{
		{"a year less a second", plain, "2027-11-22T08:59:59Z", http.StatusCreated},
		{"exactly a year", plain, "2027-11-22T09:00:00Z", http.StatusCreated},
		{"a year and a second", plain, "2027-11-22T09:00:01Z", http.StatusUnprocessableEntity},
		{"366 days without a leap day", plain, "2027-11-23T09:00:00Z", http.StatusUnprocessableEntity},
		{"a year and a second in another zone", plain, "2027-11-22T04:00:01-05:00", http.StatusUnprocessableEntity},
		{"a leap year less a second", leap, "2028-06-01T08:59:59Z", http.StatusCreated},
		{"a leap year and a second", leap, "2028-06-01T09:00:01Z", http.StatusUnprocessableEntity},
		{"a second ago", plain, "2026-11-22T08:59:59Z", http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			h := offboardingServer(f, tt.now)
			status, body := serveOffboarding(t, h, "POST", "/v1/domains/niftywidgets/offboardings", "application/json",
				`{"users":["1009"],"at":"`+tt.at+`"}`)
			if status != tt.want {
				t.Fatalf("at %s from %s: %d %s, want %d", tt.at, tt.now.Format(time.RFC3339), status, body, tt.want)
			}
			if status != http.StatusCreated {
				if len(f.offboardings) != 0 {
					t.Errorf("refused, yet scheduled %v", f.offboardings)
				}
				return
			}
			// Moving it checks the time the same way.
			var o struct{ ID string }
			if err := json.Unmarshal([]byte(body), &o); err != nil {
				t.Fatal(err)
			}
			status, body = serveOffboarding(t, h, "PATCH", "/v1/domains/niftywidgets/offboardings/"+o.ID, "application/json", `{"at":"`+tt.at+`"}`)
			if status != http.StatusOK {
				t.Errorf("moving it to the same time: %d %s", status, body)
			}
		})
	}
}

func TestImportOffboardingsRows(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	at := "2026-12-04T17:00:00Z"
	tests := []struct {
		name    string
		query   string
		csv     []string
		want    map[string]bool // scheduled extension → its recycle row's sendWelcomeEmail
		errors  string          // line: reason, …
		refused int             // the whole import's status, when refused
	}{
		{
			name:  "a row with more fields than the header",
			query: "options=deleteVoicemailMessages",
			csv: []string{
				"extension,at",
				"1004," + at,
				"1005," + at + ",Ann",
				"1006," + at + ",",
			},
			want:   map[string]bool{"1004": false},
			errors: "3: The row has 3 fields but the header names 2 columns.|4: The row has 3 fields but the header names 2 columns.",
		},
		{
			name: "a row with more fields than the full header",
			csv: []string{
				"extension,at,firstName,lastName,email,department",
				"1004," + at + ",Ann,Lee,ann@example.com,Sales,extra",
				"1005," + at + ",Bo,Li,bo@example.com",
			},
			want:   map[string]bool{"1005": false},
			errors: "2: The row has 7 fields but the header names 6 columns.",
		},
		{
			name:  "welcome mail for each new person",
			query: "options=deleteVoicemailMessages&sendWelcomeEmail=true",
			csv: []string{
				"extension,at,firstName,lastName,email,department",
				"1004," + at + ",Ann,Lee,ann@example.com,Sales",
				"1005," + at,
			},
			want: map[string]bool{"1004": true, "1005": false},
		},
		{
			name:  "no welcome mail unless asked",
			query: "sendWelcomeEmail=false",
			csv: []string{
				"extension,at,firstName,lastName,email",
				"1004," + at + ",Ann,Lee,ann@example.com",
			},
			want: map[string]bool{"1004": false},
		},
		{
			name:    "sendWelcomeEmail that is not a boolean",
			query:   "sendWelcomeEmail=yes",
			csv:     []string{"extension,at", "1004," + at},
			refused: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			for _, ext := range []string{"1004", "1005", "1006"} {
				f.users["niftywidgets/"+ext] = turnover.User{Domain: "niftywidgets", Extension: ext, Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive}
			}
			status, body := serveOffboarding(t, offboardingServer(f, now), "POST", "/v1/domains/niftywidgets/offboardings:import?"+tt.query,
				"text/csv", strings.Join(tt.csv, "\n")+"\n")
			if tt.refused != 0 {
				if status != tt.refused || len(f.offboardings) != 0 {
					t.Fatalf("import: %d %s with %d scheduled, want %d and none", status, body, len(f.offboardings), tt.refused)
				}
				return
			}
			var out struct {
				Scheduled []struct{ Users []string }
				Errors    []struct {
					Line   int
					Reason string
				}
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil || status != http.StatusOK {
				t.Fatalf("import: %d %s", status, body)
			}
			var errs []string
			for _, e := range out.Errors {
				errs = append(errs, fmt.Sprintf("%d: %s", e.Line, e.Reason))
			}
			if got := strings.Join(errs, "|"); got != tt.errors {
				t.Errorf("errors = %q, want %q", got, tt.errors)
			}
			got := map[string]bool{}
			for _, o := range f.offboardings {
				if len(o.Users) != 1 {
					t.Fatalf("offboarding %s names %v, want one user", o.ID, o.Users)
				}
				welcome := false
				for _, row := range o.Recycle {
					welcome = row.SendWelcomeEmail
				}
				got[o.Users[0]] = welcome
			}
			if len(got) != len(tt.want) || len(out.Scheduled) != len(tt.want) {
				t.Fatalf("scheduled %v (answered %d), want %v", got, len(out.Scheduled), tt.want)
			}
			for ext, w := range tt.want {
				if g, ok := got[ext]; !ok || g != w {
					t.Errorf("%s scheduled %v with sendWelcomeEmail %v, want scheduled with %v", ext, ok, g, w)
				}
			}
		})
	}
}
