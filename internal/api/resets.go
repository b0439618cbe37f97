package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"turnover/internal/reset"
	"turnover/internal/turnover"
)

// maxUsersPerJob is the most users one reset request may name.
const maxUsersPerJob = 100_000

type resetRequest struct {
	Users   []string              `json:"users"`
	Options turnover.ResetOptions `json:"options"`
	Recycle []recycleRow          `json:"recycle"`
	Confirm bool                  `json:"confirm"`
}

type recycleRow struct {
	Extension        string `json:"extension"`
	FirstName        string `json:"firstName"`
	LastName         string `json:"lastName"`
	Email            string `json:"email"`
	Department       string `json:"department"`
	SendWelcomeEmail bool   `json:"sendWelcomeEmail"`
}

func (r recycleRow) identity() turnover.NewIdentity {
	return turnover.NewIdentity{
		Extension: r.Extension, FirstName: r.FirstName, LastName: r.LastName, Email: r.Email,
		Department: r.Department, SendWelcomeEmail: r.SendWelcomeEmail,
	}
}

type resultJSON struct {
	Extension string         `json:"extension"`
	Status    string         `json:"status"`
	Deleted   map[string]int `json:"deleted"`
	Error     *string        `json:"error"`
}

type jobJSON struct {
	JobID      string                `json:"jobId"`
	Status     string                `json:"status"`
	Total      int                   `json:"total"`
	Done       int                   `json:"done"`
	Failed     int                   `json:"failed"`
	Percent    int                   `json:"percent"`
	Options    turnover.ResetOptions `json:"options"`
	CreatedAt  time.Time             `json:"createdAt"`
	FinishedAt *time.Time            `json:"finishedAt"`
	Users      []resultJSON          `json:"users"`
	NextCursor *string               `json:"nextCursor"`
}

// newJobJSON shows a job with one row per user of the page: the user's result, or
// pending while the job has not reached them.
func newJobJSON(j turnover.Job, users []string, results map[string]turnover.UserResult, next *string) jobJSON {
	body := jobJSON{
		JobID: j.ID, Status: string(j.Status), Total: j.Total, Done: j.Done, Failed: j.Failed,
		Percent: j.Percent(), Options: j.Options, CreatedAt: j.CreatedAt, Users: make([]resultJSON, len(users)), NextCursor: next,
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		body.FinishedAt = &t
	}
	for i, ext := range users {
		r, ok := results[ext]
		if !ok {
			r = turnover.UserResult{Extension: ext, Outcome: turnover.OutcomePending}
		}
		body.Users[i] = resultJSON{Extension: ext, Status: string(r.Outcome), Deleted: r.Deleted}
		if r.Deleted == nil {
			body.Users[i].Deleted = map[string]int{}
		}
		if r.Error != "" {
			e := r.Error
			body.Users[i].Error = &e
		}
	}
	return body
}

// startReset turns a confirmed reset request into a job: the job item, the new
// identities of recycled extensions, its manifest of batches in S3, then the execution
// named after the job. Nothing is written until the whole request has been checked.
func (s *Server) startReset(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	req, err := readResetRequest(w, r)
	if err != nil {
		return err
	}
	if !req.Confirm {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "A reset cannot be undone: look at POST /v1/domains/%s/resets:preview first, then send the same request with \"confirm\": true.", domain)
	}
	if err := refuseOwnExtension(id, domain, req.Users); err != nil {
		return err
	}
	if err := s.checkSomeUserExists(r, domain, req.Users); err != nil {
		return err
	}
	rows := make([]turnover.NewIdentity, len(req.Recycle))
	for i, row := range req.Recycle {
		rows[i] = row.identity()
	}
	return s.createJob(w, r, id, req.Users, req.Options, rows)
}

// createJob starts a job: the job item, the new identities of recycled extensions, its
// manifest of batches in S3, then the execution named after the job; 202 with the job.
func (s *Server) createJob(w http.ResponseWriter, r *http.Request, id turnover.Identity, users []string, opts turnover.ResetOptions, rows []turnover.NewIdentity) error {
	domain := r.PathValue("domain")
	job := turnover.Job{
		Domain: domain, ID: s.NewJobID(domain, idempotencyKey(r)), Status: turnover.JobRunning, Options: opts,
		Total: len(users), CreatedBy: id.Subject, CreatedAt: s.Now().UTC(), RequestHash: idempotencyHash(r),
	}
	l := reset.Launcher{Jobs: s.Jobs, Manifests: s.Manifests, Executions: s.Executions, BatchSize: s.BatchSize}
	// The job id comes from the key, which outlives its idempotency record: a key sent
	// again after that finds its job, which only the same request may have back.
	job, err := l.Launch(r.Context(), job, users, rows)
	if errors.Is(err, reset.ErrOtherRequest) {
		return turnover.Errorf(turnover.EUNPROCESSABLE, keyReused)
	}
	if err != nil {
		return err
	}
	s.Log.InfoContext(r.Context(), "reset job started", "apiRequestId", requestID(r), "domain", domain, "job", job.ID, "total", job.Total)
	w.Header().Set("Location", fmt.Sprintf("/v1/domains/%s/resets/%s", domain, job.ID))
	var next *string
	if len(users) > maxResultsPage {
		c := encodeOffset(maxResultsPage)
		next = &c
	}
	writeJSON(w, http.StatusAccepted, newJobJSON(job, pageOf(users, 0, maxResultsPage), nil, next))
	return nil
}

// readResetRequest reads and checks the body of a reset or its preview.
func readResetRequest(w http.ResponseWriter, r *http.Request) (resetRequest, error) {
	var req resetRequest
	if err := decode(w, r, &req); err != nil {
		return req, err
	}
	return req, checkRequest(req)
}

// checkRequest refuses a reset request that names no users or bad ones, or recycle rows
// that do not fit it. Preview and reset share it.
func checkRequest(req resetRequest) error {
	switch n := len(req.Users); {
	case n == 0:
		return turnover.Errorf(turnover.EINVALID, "Name at least one extension in users.")
	case n > maxUsersPerJob:
		return turnover.Errorf(turnover.EINVALID, "One reset may name at most %d users, not %d.", maxUsersPerJob, n)
	}
	seen := make(map[string]bool, len(req.Users))
	for _, ext := range req.Users {
		if !validExtension(ext) {
			return turnover.Errorf(turnover.EINVALID, "%q is not an extension: use 2 to 10 digits.", ext)
		}
		if seen[ext] {
			return turnover.Errorf(turnover.EINVALID, "Extension %s is named twice.", ext)
		}
		seen[ext] = true
	}
	if len(req.Recycle) > 0 && !req.Options.Recycle {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "Recycle rows need \"recycle\": true in options.")
	}
	rows := make(map[string]bool, len(req.Recycle))
	for _, row := range req.Recycle {
		switch {
		case !seen[row.Extension]:
			return turnover.Errorf(turnover.EUNPROCESSABLE, "The recycle row for %q names an extension that is not in users.", row.Extension)
		case rows[row.Extension]:
			return turnover.Errorf(turnover.EINVALID, "Extension %s has two recycle rows.", row.Extension)
		}
		rows[row.Extension] = true
		if err := row.identity().Validate(); err != nil {
			return err
		}
	}
	return nil
}

// ownExtension is the caller's own extension when they belong to domain. The subject
// is EXT@DOMAIN as the token has it; domain names are case-insensitive, so
// 1003@NiftyWidgets is extension 1003 of niftywidgets.
func ownExtension(id turnover.Identity, domain string) (string, bool) {
	at := strings.LastIndexByte(id.Subject, '@')
	if at < 0 {
		return "", false
	}
	ext, dom := strings.TrimSpace(id.Subject[:at]), strings.TrimSpace(id.Subject[at+1:])
	return ext, ext != "" && strings.EqualFold(dom, domain)
}

// refuseOwnExtension refuses a request that would reset the caller's own extension.
func refuseOwnExtension(id turnover.Identity, domain string, users []string) error {
	if own, ok := ownExtension(id, domain); ok && slices.Contains(users, own) {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "You cannot reset your own extension %s.", own)
	}
	return nil
}

// checkUsersExist refuses a request naming extensions the domain does not have; done
// says what did not happen ("scheduled").
func (s *Server) checkUsersExist(r *http.Request, domain string, users []string, done string) error {
	found, err := s.Users.GetUsers(r.Context(), domain, users)
	if err != nil {
		return err
	}
	var missing []string
	for _, ext := range users {
		if _, ok := found[ext]; !ok {
			missing = append(missing, ext)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return noSuchExtensions(domain, missing, done)
}

// checkSomeUserExists refuses a reset of which no named extension exists in the domain:
// such a job could only fail. Where some exist, the others fail alone in the job, each
// with its own result, as a user removed after the start would.
func (s *Server) checkSomeUserExists(r *http.Request, domain string, users []string) error {
	found, err := s.Users.GetUsers(r.Context(), domain, users)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		return nil
	}
	return noSuchExtensions(domain, users, "reset")
}

// noSuchExtensions names up to ten of the missing extensions, in order.
func noSuchExtensions(domain string, missing []string, done string) error {
	missing = slices.Sorted(slices.Values(missing))
	more := ""
	if len(missing) > 10 {
		more = fmt.Sprintf(" and %d more", len(missing)-10)
		missing = missing[:10]
	}
	return turnover.Errorf(turnover.EUNPROCESSABLE, "Domain %s has no extension %s%s; nothing was %s.", domain, strings.Join(missing, ", "), more, done)
}

const (
	defaultResultsPage = 1000
	maxResultsPage     = 1000
)

// getReset shows a job's progress and a page of its users, in the order the request
// named them: each user's result, or pending.
func (s *Server) getReset(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	domain, jobID := r.PathValue("domain"), r.PathValue("jobId")
	limit, offset, err := resultsPage(r)
	if err != nil {
		return err
	}
	job, users, err := s.jobUsers(r, domain, jobID)
	if err != nil {
		return err
	}
	page := pageOf(users, offset, limit)
	results, err := s.Jobs.GetResults(r.Context(), domain, jobID, page)
	if err != nil {
		return err
	}
	var next *string
	if end := offset + len(page); end < len(users) {
		c := encodeOffset(end)
		next = &c
	}
	writeJSON(w, http.StatusOK, newJobJSON(job, page, results, next))
	return nil
}

// jobUsers returns a job and its users, from its manifest.
func (s *Server) jobUsers(r *http.Request, domain, jobID string) (turnover.Job, []string, error) {
	if !jobIDPattern.MatchString(jobID) {
		return turnover.Job{}, nil, turnover.Errorf(turnover.ENOTFOUND, "There is no reset job %q.", jobID)
	}
	job, err := s.Jobs.GetJob(r.Context(), domain, jobID)
	if err != nil {
		return job, nil, err
	}
	manifest, err := s.Manifests.GetManifest(r.Context(), domain, jobID)
	if err != nil {
		return job, nil, err
	}
	var users []string
	for _, b := range manifest {
		users = append(users, b.Users...)
	}
	return job, users, nil
}

func resultsPage(r *http.Request) (limit, offset int, err error) {
	q := r.URL.Query()
	limit = defaultResultsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxResultsPage {
			return 0, 0, turnover.Errorf(turnover.EINVALID, "limit must be a whole number from 1 to %d.", maxResultsPage)
		}
		limit = n
	}
	if c := q.Get("cursor"); c != "" {
		if offset, err = decodeOffset(c); err != nil {
			return 0, 0, err
		}
	}
	return limit, offset, nil
}

// pageOf never adds offset and limit: a cursor may carry any offset, and the sum of a
// huge one and the limit would wrap around.
func pageOf(users []string, offset, limit int) []string {
	start := min(offset, len(users))
	return users[start : start+min(limit, len(users)-start)]
}

// encodeOffset and decodeOffset make the opaque cursor of a job's pages of users.
func encodeOffset(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("users:" + strconv.Itoa(n)))
}

func decodeOffset(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	n, perr := strconv.Atoi(strings.TrimPrefix(string(b), "users:"))
	if err != nil || perr != nil || !strings.HasPrefix(string(b), "users:") || n < 0 {
		return 0, turnover.Errorf(turnover.EINVALID, "The cursor is not valid here; start again without one.")
	}
	return n, nil
}

// newJobID derives a job's id from the domain and the request's Idempotency-Key.
func newJobID(domain, idempotencyKey string) string {
	sum := sha256.Sum256([]byte("job\n" + domain + "\n" + idempotencyKey))
	return hex.EncodeToString(sum[:16])
}
