package api

import (
	"bytes"
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"turnover/internal/turnover"
)

// optionNames are the reset options in the order receipts list them.
var optionNames = []struct {
	name string
	on   func(turnover.ResetOptions) bool
}{
	{"deleteVoicemailMessages", func(o turnover.ResetOptions) bool { return o.DeleteVoicemailMessages }},
	{"deleteVoicemailGreetings", func(o turnover.ResetOptions) bool { return o.DeleteVoicemailGreetings }},
	{"deleteAnsweringRules", func(o turnover.ResetOptions) bool { return o.DeleteAnsweringRules }},
	{"deleteCustomContacts", func(o turnover.ResetOptions) bool { return o.DeleteCustomContacts }},
	{"unassignPhoneNumbers", func(o turnover.ResetOptions) bool { return o.UnassignPhoneNumbers }},
	{"removeDeviceLines", func(o turnover.ResetOptions) bool { return o.RemoveDeviceLines }},
	{"recycle", func(o turnover.ResetOptions) bool { return o.Recycle }},
}

// countKeys are the per-option counts of a user's result, in receipt order.
var countKeys = []string{"voicemailMessages", "voicemailGreetings", "answeringRules", "customContacts", "phoneNumbers", "deviceLines"}

// resetReport is a job's receipt as CSV: who started it and when, its options, and each
// user's outcome and counts. It holds no deleted content and no names.
func (s *Server) resetReport(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	domain, jobID := r.PathValue("domain"), r.PathValue("jobId")
	job, users, err := s.jobUsers(r, domain, jobID)
	if err != nil {
		return err
	}
	results, err := s.Jobs.ListResults(r.Context(), domain, jobID)
	if err != nil {
		return err
	}
	byExt := make(map[string]turnover.UserResult, len(results))
	for _, res := range results {
		byExt[res.Extension] = res
	}
	var opts []string
	for _, o := range optionNames {
		if o.on(job.Options) {
			opts = append(opts, o.name)
		}
	}
	finished := ""
	if !job.FinishedAt.IsZero() {
		finished = job.FinishedAt.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="reset-`+job.ID+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	out := csv.NewWriter(w)
	header := []string{"jobId", "domain", "startedBy", "startedAt", "finishedAt", "jobStatus", "options", "extension", "status", "error"}
	_ = out.Write(append(header, countKeys...))
	for _, ext := range users {
		res, ok := byExt[ext]
		if !ok {
			res = turnover.UserResult{Extension: ext, Outcome: turnover.OutcomePending}
		}
		row := []string{job.ID, domain, job.CreatedBy, job.CreatedAt.UTC().Format(time.RFC3339), finished,
			string(job.Status), strings.Join(opts, " "), ext, string(res.Outcome), res.Error}
		for _, k := range countKeys {
			if n, ok := res.Deleted[k]; ok {
				row = append(row, strconv.Itoa(n))
			} else {
				row = append(row, "")
			}
		}
		_ = out.Write(cells(row))
	}
	out.Flush()
	return out.Error()
}

// cells keeps a spreadsheet from reading a cell as a formula.
func cells(row []string) []string {
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}

// jobAction runs an action on a job: POST /resets/{jobId}:retry.
func (s *Server) jobAction(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	jobID, ok := strings.CutSuffix(r.PathValue("jobAction"), ":retry")
	if !ok {
		return turnover.Errorf(turnover.ENOTFOUND, "There is no POST %s.", r.URL.Path)
	}
	return s.retryJob(w, r, id, jobID)
}

// retryJob starts a new job for the users a finished job failed to reset, with the same
// options and the same new identities.
func (s *Server) retryJob(w http.ResponseWriter, r *http.Request, id turnover.Identity, jobID string) error {
	domain := r.PathValue("domain")
	if err := decodeOptional(w, r); err != nil {
		return err
	}
	job, users, err := s.jobUsers(r, domain, jobID)
	if err != nil {
		return err
	}
	if job.Status == turnover.JobRunning {
		return turnover.Errorf(turnover.ECONFLICT, "Job %s is still running; retry its failed users once it has finished.", jobID)
	}
	results, err := s.Jobs.ListResults(r.Context(), domain, jobID)
	if err != nil {
		return err
	}
	done := make(map[string]bool, len(results))
	for _, res := range results {
		done[res.Extension] = res.Outcome != turnover.OutcomeFailed
	}
	var failed []string
	for _, ext := range users {
		if !done[ext] { // failed, or never reached by a job that stopped
			failed = append(failed, ext)
		}
	}
	if len(failed) == 0 {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "Job %s has no failed users to retry.", jobID)
	}
	// Whoever started the job, the caller may not reset themselves by retrying it.
	if err := refuseOwnExtension(id, domain, failed); err != nil {
		return err
	}
	var rows []turnover.NewIdentity
	if job.Options.Recycle {
		all, err := s.Jobs.GetRecycleRows(r.Context(), domain, jobID)
		if err != nil {
			return err
		}
		retried := make(map[string]bool, len(failed))
		for _, ext := range failed {
			retried[ext] = true
		}
		for _, row := range all {
			if retried[row.Extension] {
				rows = append(rows, row)
			}
		}
	}
	return s.createJob(w, r, id, failed, job.Options, rows)
}

// decodeOptional accepts an empty body or an empty JSON object.
func decodeOptional(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var empty struct{}
	return decode(w, r, &empty)
}
