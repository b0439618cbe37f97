// Package api is the portal's HTTP API: an ordinary net/http handler that the api
// function serves through API Gateway (HTTP API, payload 2.0) and the JWT authorizer.
// It reads the caller's verified identity from the authorizer's claims, never from the
// request body, and acts only on the domain in the path when that identity may.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"turnover/internal/turnover"
)

// Users reads a domain's users and directory.
type Users interface {
	ListUsers(ctx context.Context, domain string, f turnover.UserFilter) ([]turnover.User, string, error)
	GetUser(ctx context.Context, domain, ext string) (turnover.User, error)
	GetUsers(ctx context.Context, domain string, exts []string) (map[string]turnover.User, error)
	LoadUserData(ctx context.Context, domain, ext string) (turnover.UserData, string, error)
	LookupDirectory(ctx context.Context, domain, digits string) ([]turnover.DirectoryEntry, error)
	ListNumbers(ctx context.Context, domain string) ([]turnover.PhoneNumber, error)
	ListPhones(ctx context.Context, domain string) ([]turnover.Phone, error)
}

// Jobs records reset jobs and reads their progress.
type Jobs interface {
	CreateJob(ctx context.Context, j turnover.Job) error
	GetJob(ctx context.Context, domain, jobID string) (turnover.Job, error)
	GetResults(ctx context.Context, domain, jobID string, exts []string) (map[string]turnover.UserResult, error)
	ListResults(ctx context.Context, domain, jobID string) ([]turnover.UserResult, error)
	GetRecycleRows(ctx context.Context, domain, jobID string) ([]turnover.NewIdentity, error)
	PutRecycleRows(ctx context.Context, domain, jobID string, rows []turnover.NewIdentity) error
	RunningJobs(ctx context.Context, domain string) ([]string, error)
}

// Manifests stores a job's users in batches for the state machine to read.
type Manifests interface {
	PutManifest(ctx context.Context, domain, jobID string, batches []turnover.Batch) (turnover.ManifestLocation, error)
	GetManifest(ctx context.Context, domain, jobID string) ([]turnover.Batch, error)
}

// Executions starts a job's state machine execution; starting one twice is a no-op.
type Executions interface {
	StartJob(ctx context.Context, in turnover.ExecutionInput) error
}

// Server serves the API.
type Server struct {
	Users        Users
	Jobs         Jobs
	Manifests    Manifests
	Executions   Executions
	Idempotency  Idempotency
	Setup        Setup
	Mail         Mail
	Accounts     Accounts
	Offboardings Offboardings
	Log          *slog.Logger
	// BatchSize is how many users one reset invocation handles.
	BatchSize int
	// Identity reads the caller's verified identity; by default from the API Gateway
	// JWT authorizer's claims.
	Identity func(*http.Request) (turnover.Identity, bool)
	// NewJobID returns the id of the job a request with an Idempotency-Key starts; by
	// default derived from the domain and the key, so even a forgotten key cannot start
	// the same job twice.
	NewJobID func(domain, idempotencyKey string) string
	Now      func() time.Time
}

// maxBody is the largest request body accepted: 100,000 extensions with room to spare.
const maxBody = 4 << 20

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	if s.Identity == nil {
		s.Identity = IdentityFromAuthorizer
	}
	if s.NewJobID == nil {
		s.NewJobID = newJobID
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	mux := http.NewServeMux()
	domain := func(pattern string, h handlerFunc) {
		mux.Handle(pattern, s.authorized(h))
	}
	domain("GET /v1/domains/{domain}/users", s.listUsers)
	domain("GET /v1/domains/{domain}/users/{ext}", s.getUser)
	domain("POST /v1/domains/{domain}/resets", s.idempotent(s.startReset))
	domain("POST /v1/domains/{domain}/resets:preview", s.previewReset)
	domain("GET /v1/domains/{domain}/resets/{jobId}", s.getReset)
	domain("GET /v1/domains/{domain}/resets/{jobId}/report.csv", s.resetReport)
	domain("POST /v1/domains/{domain}/resets/{jobAction}", s.idempotent(s.jobAction))
	domain("GET /v1/domains/{domain}/directory", s.lookupDirectory)
	domain("GET /v1/domains/{domain}/numbers", s.listNumbers)
	domain("GET /v1/domains/{domain}/phones", s.listPhones)
	domain("POST /v1/domains/{domain}/recycles", s.idempotent(s.recycle))
	domain("POST /v1/domains/{domain}/bulk-actions", s.idempotent(s.bulkAction))
	domain("POST /v1/domains/{domain}/offboardings", s.idempotent(s.createOffboarding))
	domain("POST /v1/domains/{domain}/offboardings:import", s.idempotent(s.importOffboardings))
	domain("GET /v1/domains/{domain}/offboardings", s.listOffboardings)
	domain("GET /v1/domains/{domain}/offboardings/{id}", s.getOffboarding)
	domain("PATCH /v1/domains/{domain}/offboardings/{id}", s.idempotent(s.moveOffboarding))
	domain("DELETE /v1/domains/{domain}/offboardings/{id}", s.cancelOffboarding)
	mux.HandleFunc("GET /portal/resets", s.setupForm)
	mux.HandleFunc("POST /v1/setup", s.completeSetup)
	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, turnover.Errorf(turnover.ENOTFOUND, "There is no %s %s.", r.Method, r.URL.Path))
	})
	return s.logged(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux would answer a path like /resets//report.csv with a redirect to its
		// cleaned form, a different resource; such a path names nothing here.
		if p := r.URL.Path; path.Clean(p) != strings.TrimSuffix(p, "/") {
			s.writeError(w, r, turnover.Errorf(turnover.ENOTFOUND, "There is no %s %s.", r.Method, p))
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// authorized runs h for a caller who may act on the path's domain: 401 without a
// verified identity, 403 for a domain the identity may not act on, before h reads or
// changes anything.
func (s *Server) authorized(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.Identity(r)
		if !ok {
			s.writeError(w, r, turnover.Errorf(turnover.EUNAUTHORIZED, "Sign in to use this API."))
			return
		}
		domain := r.PathValue("domain")
		if !validDomain(domain) {
			s.writeError(w, r, turnover.Errorf(turnover.EINVALID, "%q is not a domain name.", domain))
			return
		}
		if !id.CanManage(domain) {
			s.writeError(w, r, turnover.Errorf(turnover.EFORBIDDEN, "You may not manage users of domain %s.", domain))
			return
		}
		if err := h(w, r, id); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// logged writes one access log line per request: ids and outcomes, never personal data.
// The job and offboarding a route names are logged when the path holds an id's shape;
// anything else a caller put there is not.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		attrs := []slog.Attr{
			slog.String("apiRequestId", requestID(r)),
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.String("domain", r.PathValue("domain")),
		}
		jobID := r.PathValue("jobId")
		if action := r.PathValue("jobAction"); action != "" {
			jobID, _, _ = strings.Cut(action, ":")
		}
		if jobIDPattern.MatchString(jobID) {
			attrs = append(attrs, slog.String("jobId", jobID))
		}
		if id := r.PathValue("id"); strings.Contains(r.Pattern, "/offboardings/{id}") && jobIDPattern.MatchString(id) {
			attrs = append(attrs, slog.String("offboardingId", id))
		}
		attrs = append(attrs, slog.Int("status", rec.status), slog.Duration("took", s.Now().Sub(start)))
		s.Log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}
