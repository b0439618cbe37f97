package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"turnover/internal/turnover"
)

// Offboardings keeps scheduled offboardings.
type Offboardings interface {
	CreateOffboarding(ctx context.Context, o turnover.Offboarding) error
	GetOffboarding(ctx context.Context, domain, id string) (turnover.Offboarding, error)
	ListOffboardings(ctx context.Context, domain string) ([]turnover.Offboarding, error)
	CancelOffboarding(ctx context.Context, o turnover.Offboarding) error
	RescheduleOffboarding(ctx context.Context, o turnover.Offboarding, at time.Time) error
}

// maxOffboardingUsers is the most users one offboarding may name.
const maxOffboardingUsers = 99

type offboardingRequest struct {
	Users   []string              `json:"users"`
	Options turnover.ResetOptions `json:"options"`
	Recycle []recycleRow          `json:"recycle"`
	At      string                `json:"at"`
}

type offboardingJSON struct {
	ID        string                `json:"id"`
	Status    string                `json:"status"`
	At        time.Time             `json:"at"`
	Users     []string              `json:"users"`
	Options   turnover.ResetOptions `json:"options"`
	CreatedBy string                `json:"createdBy"`
	CreatedAt time.Time             `json:"createdAt"`
	JobID     *string               `json:"jobId"`
}

// view shows an offboarding; one that has started says how its job went.
func (s *Server) view(r *http.Request, o turnover.Offboarding) (offboardingJSON, error) {
	v := offboardingJSON{ID: o.ID, Status: string(o.Status), At: o.At, Users: o.Users, Options: o.Options, CreatedBy: o.CreatedBy, CreatedAt: o.CreatedAt}
	if o.Status == turnover.OffboardingStarting {
		v.Status = string(turnover.OffboardingScheduled)
	}
	if o.Status == turnover.OffboardingStarted && o.JobID != "" {
		id := o.JobID
		v.JobID = &id
		job, err := s.Jobs.GetJob(r.Context(), o.Domain, o.JobID)
		if err != nil {
			return v, err
		}
		switch job.Status {
		case turnover.JobSucceeded:
			v.Status = string(turnover.OffboardingSucceeded)
		case turnover.JobFailed, turnover.JobPartiallyFailed:
			v.Status = string(turnover.OffboardingFailed)
		}
	}
	return v, nil
}

// parseAt reads an offboarding's time: RFC 3339, in the future, and at most a calendar
// year ahead (the same date next year, whether or not a February 29 lies between).
func (s *Server) parseAt(v string) (time.Time, error) {
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return at, turnover.Errorf(turnover.EINVALID, "at must be a time like 2026-12-04T17:00:00-05:00, not %q.", v)
	}
	now := s.Now()
	switch {
	case !at.After(now):
		return at, turnover.Errorf(turnover.EUNPROCESSABLE, "at must be in the future.")
	case at.After(now.AddDate(1, 0, 0)):
		return at, turnover.Errorf(turnover.EUNPROCESSABLE, "at may be at most a year ahead.")
	}
	return at.UTC().Truncate(time.Second), nil
}

// offboardingID derives an offboarding's id from the request's Idempotency-Key.
func offboardingID(domain, key string) string {
	sum := sha256.Sum256([]byte("offboarding\n" + domain + "\n" + key))
	return hex.EncodeToString(sum[:12])
}

// scheduleOffboarding checks one offboarding and schedules it.
func (s *Server) scheduleOffboarding(r *http.Request, id turnover.Identity, o turnover.Offboarding, rows []recycleRow) (turnover.Offboarding, error) {
	if err := checkRequest(resetRequest{Users: o.Users, Options: o.Options, Recycle: rows}); err != nil {
		return o, err
	}
	if len(o.Users) > maxOffboardingUsers {
		return o, turnover.Errorf(turnover.EINVALID, "One offboarding may name at most %d users; schedule more offboardings.", maxOffboardingUsers)
	}
	if own, ok := ownExtension(id, o.Domain); ok && slices.Contains(o.Users, own) {
		return o, turnover.Errorf(turnover.EUNPROCESSABLE, "You cannot offboard your own extension %s.", own)
	}
	if err := s.checkUsersExist(r, o.Domain, o.Users, "scheduled"); err != nil {
		return o, err
	}
	for _, row := range rows {
		o.Recycle = append(o.Recycle, row.identity())
	}
	o.Status, o.CreatedBy, o.CreatedAt = turnover.OffboardingScheduled, id.Subject, s.Now().UTC()
	return o, s.Offboardings.CreateOffboarding(r.Context(), o)
}

func (s *Server) createOffboarding(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	var req offboardingRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	at, err := s.parseAt(req.At)
	if err != nil {
		return err
	}
	o, err := s.scheduleOffboarding(r, id, turnover.Offboarding{Domain: domain, ID: offboardingID(domain, idempotencyKey(r)), At: at, Users: req.Users, Options: req.Options}, req.Recycle)
	if err != nil {
		return err
	}
	v, err := s.view(r, o)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/domains/"+domain+"/offboardings/"+o.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listOffboardings(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains([]string{"scheduled", "started", "cancelled", "succeeded", "failed"}, status) {
		return turnover.Errorf(turnover.EINVALID, "status must be scheduled, started, cancelled, succeeded or failed.")
	}
	all, err := s.Offboardings.ListOffboardings(r.Context(), r.PathValue("domain"))
	if err != nil {
		return err
	}
	out := []offboardingJSON{}
	for _, o := range all {
		v, err := s.view(r, o)
		if err != nil {
			return err
		}
		if status == "" || v.Status == status {
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Offboardings []offboardingJSON `json:"offboardings"`
	}{out})
	return nil
}

func (s *Server) getOffboarding(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	o, err := s.Offboardings.GetOffboarding(r.Context(), r.PathValue("domain"), r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := s.view(r, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// cancelOffboarding cancels a scheduled offboarding; 409 once it has started.
func (s *Server) cancelOffboarding(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	o, err := s.Offboardings.GetOffboarding(r.Context(), r.PathValue("domain"), r.PathValue("id"))
	if err != nil {
		return err
	}
	if o.Status != turnover.OffboardingCancelled {
		if err := s.Offboardings.CancelOffboarding(r.Context(), o); err != nil {
			return err
		}
		o.Status = turnover.OffboardingCancelled
	}
	v, err := s.view(r, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// moveOffboarding moves a scheduled offboarding to another time; 409 once it started.
func (s *Server) moveOffboarding(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	var req struct {
		At string `json:"at"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	at, err := s.parseAt(req.At)
	if err != nil {
		return err
	}
	o, err := s.Offboardings.GetOffboarding(r.Context(), r.PathValue("domain"), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Offboardings.RescheduleOffboarding(r.Context(), o, at); err != nil {
		return err
	}
	o.At = at
	v, err := s.view(r, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type importError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// importOffboardings schedules one offboarding per row of an HR export in CSV:
// extension,at[,firstName,lastName,email,department], the header being line 1. Valid
// rows are scheduled whatever the others hold; each invalid row is reported by line.
// Options for every row come from the query: options=deleteVoicemailMessages,…; with
// sendWelcomeEmail=true each row naming a new person mails them a welcome link once
// the job has recycled the extension.
func (s *Server) importOffboardings(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		return turnover.Errorf(turnover.EINVALID, "Send the rows as text/csv.")
	}
	opts, err := optionsFromQuery(r.URL.Query().Get("options"))
	if err != nil {
		return err
	}
	var welcome bool
	switch v := r.URL.Query().Get("sendWelcomeEmail"); v {
	case "", "false":
	case "true":
		welcome = true
	default:
		return turnover.Errorf(turnover.EINVALID, "sendWelcomeEmail must be true or false, not %q.", v)
	}
	// Spreadsheets save "CSV UTF-8" with a byte order mark, which the CSV reader would
	// take for part of the first field, ahead of any opening quote.
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, maxBody))
	if bom, _ := body.Peek(3); string(bom) == "\ufeff" {
		_, _ = body.Discard(3)
	}
	in := csv.NewReader(body)
	in.FieldsPerRecord = -1
	in.TrimLeadingSpace = true
	header, err := in.Read()
	if err != nil {
		return turnover.Errorf(turnover.EINVALID, "The CSV has no header line: extension,at[,firstName,lastName,email,department].")
	}
	want := []string{"extension", "at", "firstname", "lastname", "email", "department"}
	if len(header) < 2 || len(header) > len(want) || !slices.EqualFunc(header, want[:len(header)], func(a, b string) bool {
		return strings.EqualFold(strings.TrimSpace(a), b)
	}) {
		return turnover.Errorf(turnover.EINVALID, "The header must be extension,at[,firstName,lastName,email,department].")
	}
	result := struct {
		Scheduled []offboardingJSON `json:"scheduled"`
		Errors    []importError     `json:"errors"`
	}{Scheduled: []offboardingJSON{}, Errors: []importError{}}
	for {
		rec, err := in.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		// Rows are reported by the line of the body they start on, as a spreadsheet or
		// editor shows it: blank lines and line breaks inside quotes count.
		var bad *csv.ParseError
		if errors.As(err, &bad) {
			result.Errors = append(result.Errors, importError{bad.StartLine, "The line is not valid CSV."})
			continue
		}
		if err != nil {
			return err
		}
		line, _ := in.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		o, err := s.importRow(r, id, domain, line, rec, importSettings{columns: len(header), options: opts, welcome: welcome})
		if err != nil {
			result.Errors = append(result.Errors, importError{line, turnover.ErrorMessage(err)})
			if turnover.ErrorCode(err) == turnover.EINTERNAL {
				s.logRowFailure(r, "import", "", err)
			}
			continue
		}
		v, err := s.view(r, o)
		if err != nil {
			return err
		}
		result.Scheduled = append(result.Scheduled, v)
	}
	writeJSON(w, http.StatusOK, result)
	return nil
}

// importSettings are what every row of one import shares.
type importSettings struct {
	columns int // as many as the header names
	options turnover.ResetOptions
	welcome bool // mail each new person named a welcome link
}

func (s *Server) importRow(r *http.Request, id turnover.Identity, domain string, line int, rec []string, set importSettings) (turnover.Offboarding, error) {
	field := func(i int) string {
		if i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	switch {
	case len(rec) < 2:
		return turnover.Offboarding{}, turnover.Errorf(turnover.EINVALID, "A row holds extension,at and optionally firstName,lastName,email,department.")
	case len(rec) > set.columns:
		// A value past the header's columns would be dropped without a word.
		return turnover.Offboarding{}, turnover.Errorf(turnover.EINVALID, "The row has %d fields but the header names %d columns.", len(rec), set.columns)
	}
	at, err := s.parseAt(field(1))
	if err != nil {
		return turnover.Offboarding{}, err
	}
	opts := set.options
	var rows []recycleRow
	if field(2)+field(3)+field(4)+field(5) != "" {
		rows = []recycleRow{{Extension: field(0), FirstName: field(2), LastName: field(3), Email: field(4), Department: field(5),
			SendWelcomeEmail: set.welcome && field(4) != ""}}
		opts.Recycle = true
	}
	key := idempotencyKey(r) + "\n" + strconv.Itoa(line)
	return s.scheduleOffboarding(r, id, turnover.Offboarding{Domain: domain, ID: offboardingID(domain, key), At: at, Users: []string{field(0)}, Options: opts}, rows)
}

// optionsFromQuery reads a comma-separated list of reset option names.
func optionsFromQuery(list string) (turnover.ResetOptions, error) {
	var o turnover.ResetOptions
	set := map[string]*bool{
		"deleteVoicemailMessages": &o.DeleteVoicemailMessages, "deleteVoicemailGreetings": &o.DeleteVoicemailGreetings,
		"deleteAnsweringRules": &o.DeleteAnsweringRules, "deleteCustomContacts": &o.DeleteCustomContacts,
		"unassignPhoneNumbers": &o.UnassignPhoneNumbers, "removeDeviceLines": &o.RemoveDeviceLines, "recycle": &o.Recycle,
	}
	for _, name := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' }) {
		p, ok := set[strings.TrimSpace(name)]
		if !ok {
			return o, turnover.Errorf(turnover.EINVALID, "Unknown option %q.", strings.TrimSpace(name))
		}
		*p = true
	}
	return o, nil
}
