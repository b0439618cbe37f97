package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

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
}

func newJobJSON(j turnover.Job, results []turnover.UserResult) jobJSON {
	body := jobJSON{
		JobID: j.ID, Status: string(j.Status), Total: j.Total, Done: j.Done, Failed: j.Failed,
		Percent: j.Percent(), Options: j.Options, CreatedAt: j.CreatedAt, Users: make([]resultJSON, len(results)),
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		body.FinishedAt = &t
	}
	for i, r := range results {
		body.Users[i] = resultJSON{Extension: r.Extension, Status: string(r.Outcome), Deleted: r.Deleted}
		if body.Users[i].Deleted == nil {
			body.Users[i].Deleted = map[string]int{}
		}
		if r.Error != "" {
			e := r.Error
			body.Users[i].Error = &e
		}
	}
	return body
}

// startReset turns a confirmed reset request into a job: the job item, its manifest of
// batches in S3, then the execution named after the job. Nothing is written until the
// whole request has been checked.
func (s *Server) startReset(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	var req resetRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkReset(r, domain, id, req); err != nil {
		return err
	}
	job := turnover.Job{
		Domain: domain, ID: s.NewJobID(), Status: turnover.JobRunning, Options: req.Options,
		Total: len(req.Users), CreatedBy: id.Subject, CreatedAt: s.Now().UTC(),
	}
	if err := s.Jobs.CreateJob(r.Context(), job); err != nil {
		return err
	}
	manifest, err := s.Manifests.PutManifest(r.Context(), domain, job.ID, batches(req.Users, s.BatchSize))
	if err != nil {
		return err
	}
	err = s.Executions.StartJob(r.Context(), turnover.ExecutionInput{Domain: domain, JobID: job.ID, Options: req.Options, Manifest: manifest})
	if err != nil {
		return err
	}
	s.Log.InfoContext(r.Context(), "reset job started", "apiRequestId", requestID(r), "domain", domain, "job", job.ID, "total", job.Total)
	w.Header().Set("Location", fmt.Sprintf("/v1/domains/%s/resets/%s", domain, job.ID))
	writeJSON(w, http.StatusAccepted, newJobJSON(job, nil))
	return nil
}

// checkReset refuses a reset request that is not confirmed, names no users or bad ones,
// names the caller's own extension, or names extensions the domain does not have.
func (s *Server) checkReset(r *http.Request, domain string, id turnover.Identity, req resetRequest) error {
	if !req.Confirm {
		return turnover.Errorf(turnover.EINVALID, "A reset cannot be undone: send \"confirm\": true to start it.")
	}
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
	if len(req.Recycle) > 0 {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "Recycle rows in a reset request are not supported yet; reset first, then recycle the extensions.")
	}
	if own := strings.TrimSuffix(id.Subject, "@"+domain); own != id.Subject && seen[own] {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "You cannot reset your own extension %s.", own)
	}
	found, err := s.Users.GetUsers(r.Context(), domain, req.Users)
	if err != nil {
		return err
	}
	var missing []string
	for _, ext := range req.Users {
		if _, ok := found[ext]; !ok {
			missing = append(missing, ext)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		more := ""
		if len(missing) > 10 {
			more = fmt.Sprintf(" and %d more", len(missing)-10)
			missing = missing[:10]
		}
		return turnover.Errorf(turnover.EUNPROCESSABLE, "Domain %s has no extension %s%s; nothing was reset.", domain, strings.Join(missing, ", "), more)
	}
	return nil
}

// batches splits users into the manifest's batches of size n.
func batches(users []string, n int) []turnover.Batch {
	n = max(n, 1)
	out := make([]turnover.Batch, 0, (len(users)+n-1)/n)
	for start := 0; start < len(users); start += n {
		out = append(out, turnover.Batch{Users: users[start:min(start+n, len(users))]})
	}
	return out
}

func (s *Server) getReset(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	jobID := r.PathValue("jobId")
	if !jobIDPattern.MatchString(jobID) {
		return turnover.Errorf(turnover.ENOTFOUND, "There is no reset job %q.", jobID)
	}
	job, results, err := s.Jobs.GetJob(r.Context(), r.PathValue("domain"), jobID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newJobJSON(job, results))
	return nil
}

func newJobID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
