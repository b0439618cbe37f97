package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"turnover/internal/turnover"
)

type userJSON struct {
	Extension  string `json:"extension"`
	FirstName  string `json:"firstName"`
	LastName   string `json:"lastName"`
	Email      string `json:"email"`
	Department string `json:"department"`
	Scope      string `json:"scope"`
	Status     string `json:"status"`
	Login      string `json:"login"`
	// Offboarding is the user's pending offboarding, or null.
	Offboarding *pendingJSON `json:"offboarding"`
}

type pendingJSON struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

func newUserJSON(u turnover.User) userJSON {
	v := userJSON{
		Extension: u.Extension, FirstName: u.FirstName, LastName: u.LastName, Email: u.Email,
		Department: u.Department, Scope: string(u.Scope), Status: string(u.Status), Login: u.Login(),
	}
	if o := u.Offboarding; o != nil {
		v.Offboarding = &pendingJSON{ID: o.ID, At: o.At}
	}
	return v
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	q := r.URL.Query()
	f := turnover.UserFilter{
		Status:     turnover.Status(q.Get("status")),
		Department: q.Get("department"),
		Scope:      turnover.Scope(q.Get("scope")),
		Query:      strings.TrimSpace(q.Get("q")),
		Limit:      defaultPageSize,
		Cursor:     q.Get("cursor"),
	}
	if f.Status != "" && !f.Status.Valid() {
		return turnover.Errorf(turnover.EINVALID, "status must be active, password_required or setup_required.")
	}
	if f.Scope != "" && !f.Scope.Valid() {
		return turnover.Errorf(turnover.EINVALID, "scope must be one of basic_user, call_center_agent, call_center_supervisor, office_manager, reseller, super_user.")
	}
	if utf8.RuneCountInString(f.Query) > 64 || utf8.RuneCountInString(f.Department) > 64 {
		return turnover.Errorf(turnover.EINVALID, "q and department may hold at most 64 characters.")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return turnover.Errorf(turnover.EINVALID, "limit must be a whole number from 1 to %d.", maxPageSize)
		}
		f.Limit = n
	}
	users, next, err := s.Users.ListUsers(r.Context(), r.PathValue("domain"), f)
	if err != nil {
		return err
	}
	body := struct {
		Users      []userJSON `json:"users"`
		NextCursor *string    `json:"nextCursor"`
	}{Users: make([]userJSON, len(users))}
	for i, u := range users {
		body.Users[i] = newUserJSON(u)
	}
	if next != "" {
		body.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	ext := r.PathValue("ext")
	if !validExtension(ext) {
		return turnover.Errorf(turnover.EINVALID, "%q is not an extension: use 2 to 10 digits.", ext)
	}
	u, err := s.Users.GetUser(r.Context(), r.PathValue("domain"), ext)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newUserJSON(u))
	return nil
}

func (s *Server) lookupDirectory(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	digits := r.URL.Query().Get("digits")
	if !digitsPattern.MatchString(digits) {
		return turnover.Errorf(turnover.EINVALID, "digits must be 1 to 32 keypad digits from 2 to 9.")
	}
	entries, err := s.Users.LookupDirectory(r.Context(), r.PathValue("domain"), digits)
	if err != nil {
		return err
	}
	type entryJSON struct {
		Extension string `json:"extension"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
	}
	body := struct {
		Entries []entryJSON `json:"entries"`
	}{Entries: make([]entryJSON, len(entries))}
	for i, e := range entries {
		body.Entries[i] = entryJSON(e)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) listNumbers(w http.ResponseWriter, r *http.Request, _ turnover.Identity) error {
	numbers, err := s.Users.ListNumbers(r.Context(), r.PathValue("domain"))
	if err != nil {
		return err
	}
	type numberJSON struct {
		Number    string  `json:"number"`
		Status    string  `json:"status"`
		Extension *string `json:"extension"`
	}
	body := struct {
		Numbers []numberJSON `json:"numbers"`
	}{Numbers: make([]numberJSON, len(numbers))}
	for i, n := range numbers {
		body.Numbers[i] = numberJSON{Number: n.Number, Status: "available"}
		if n.Extension != "" {
			ext := n.Extension
			body.Numbers[i].Status, body.Numbers[i].Extension = "assigned", &ext
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
