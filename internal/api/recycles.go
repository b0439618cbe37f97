package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"turnover/internal/turnover"
)

// Accounts changes users outside reset jobs.
type Accounts interface {
	SetIdentity(ctx context.Context, domain string, id turnover.NewIdentity) error
	// ForcePasswordReset voids a user's password and older setup links and returns the
	// status the user is left in: setup_required for a user who has not finished setup.
	ForcePasswordReset(ctx context.Context, domain, ext string) (pinOnFile bool, err error)
}

// maxRows bounds the rows of one recycle or bulk action.
const maxRows = 1000

type rowResult struct {
	Extension string  `json:"extension"`
	Status    string  `json:"status"`
	Email     string  `json:"email"`
	Error     *string `json:"error"`
}

func (r *rowResult) fail(err error) {
	r.Status = "failed"
	msg := turnover.ErrorMessage(err)
	r.Error = &msg
}

// requestScope names a request for mail markers: a retried request (same
// Idempotency-Key) never mails a second copy.
func requestScope(r *http.Request) string {
	sum := sha256.Sum256([]byte(idempotencyKey(r)))
	return "req-" + hex.EncodeToString(sum[:12])
}

// recycle gives reset extensions their new people, row by row: one bad row does not
// hold back the others.
func (s *Server) recycle(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	var req struct {
		Rows []recycleRow `json:"rows"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if n := len(req.Rows); n == 0 || n > maxRows {
		return turnover.Errorf(turnover.EINVALID, "Send 1 to %d rows.", maxRows)
	}
	results := make([]rowResult, len(req.Rows))
	seen := map[string]bool{}
	for i, row := range req.Rows {
		res := &results[i]
		res.Extension, res.Status, res.Email = row.Extension, "recycled", "not_requested"
		nid := row.identity()
		switch {
		case !validExtension(row.Extension):
			res.fail(turnover.Errorf(turnover.EINVALID, "%q is not an extension: use 2 to 10 digits.", row.Extension))
			continue
		case seen[row.Extension]:
			res.fail(turnover.Errorf(turnover.EINVALID, "Extension %s has two rows.", row.Extension))
			continue
		}
		seen[row.Extension] = true
		if err := nid.Validate(); err != nil {
			res.fail(err)
			continue
		}
		if err := s.Accounts.SetIdentity(r.Context(), domain, nid); err != nil {
			s.logRowFailure(r, "recycle", row.Extension, err)
			res.fail(err)
			continue
		}
		if row.SendWelcomeEmail {
			res.Email = s.mail(r, turnover.MailRequest{Domain: domain, Extension: row.Extension, Purpose: turnover.LinkWelcome, Scope: requestScope(r)})
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Results []rowResult `json:"results"`
	}{results})
	return nil
}

// mail queues a setup link's mail and says how it went: queued, or failed. The mailer
// sends it within moments, at the rate SES allows.
func (s *Server) mail(r *http.Request, req turnover.MailRequest) string {
	if err := s.Mail.Request(r.Context(), []turnover.MailRequest{req}); err != nil {
		s.logRowFailure(r, "mail", req.Extension, err)
		return "failed"
	}
	return "queued"
}

func (s *Server) logRowFailure(r *http.Request, what, ext string, err error) {
	if turnover.ErrorCode(err) == turnover.EINTERNAL {
		s.Log.ErrorContext(r.Context(), what+" failed", "apiRequestId", requestID(r), "domain", r.PathValue("domain"), "extension", ext, "error", err)
	}
}

type bulkRequest struct {
	Action            string   `json:"action"`
	Users             []string `json:"users"`
	SendRecoveryEmail bool     `json:"sendRecoveryEmail"`
}

// bulkAction runs one action over many users: send_welcome_email (a new link to the
// email on file) or force_password_reset (password and older links void, status
// password_required, and a recovery link if asked). A user without a voicemail PIN (one
// who never finished setup) who is asked a mail for gets a welcome link (password and
// PIN; email "queued_welcome") instead of a recovery link, which asks for no PIN.
// Per-user results.
func (s *Server) bulkAction(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
	domain := r.PathValue("domain")
	var req bulkRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	switch req.Action {
	case "send_welcome_email", "force_password_reset":
	default:
		return turnover.Errorf(turnover.EINVALID, "action must be send_welcome_email or force_password_reset.")
	}
	if req.SendRecoveryEmail && req.Action != "force_password_reset" {
		return turnover.Errorf(turnover.EINVALID, "sendRecoveryEmail goes with force_password_reset only.")
	}
	if n := len(req.Users); n == 0 || n > maxRows {
		return turnover.Errorf(turnover.EINVALID, "Name 1 to %d users.", maxRows)
	}
	seen := map[string]bool{}
	for _, ext := range req.Users {
		if !validExtension(ext) || seen[ext] {
			return turnover.Errorf(turnover.EINVALID, "%q is not an extension, or is named twice.", ext)
		}
		seen[ext] = true
	}
	users, err := s.Users.GetUsers(r.Context(), domain, req.Users)
	if err != nil {
		return err
	}
	own, _ := ownExtension(id, domain)
	results := make([]rowResult, len(req.Users))
	for i, ext := range req.Users {
		res := &results[i]
		res.Extension, res.Status, res.Email = ext, "done", "not_requested"
		u, ok := users[ext]
		switch {
		case !ok:
			res.fail(turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist in domain %s.", ext, domain))
			continue
		case req.Action == "force_password_reset" && ext == own:
			res.fail(turnover.Errorf(turnover.EUNPROCESSABLE, "You cannot force a password reset of your own extension."))
			continue
		case (req.Action == "send_welcome_email" || req.SendRecoveryEmail) && !turnover.ValidEmail(u.Email):
			res.fail(turnover.Errorf(turnover.EUNPROCESSABLE, "Extension %s has no email address on file.", ext))
			continue
		}
		mail := turnover.MailRequest{Domain: domain, Extension: ext, Purpose: turnover.LinkWelcome, Scope: requestScope(r)}
		welcomeInstead := false
		if req.Action == "force_password_reset" {
			pinOnFile, err := s.Accounts.ForcePasswordReset(r.Context(), domain, ext)
			if err != nil {
				s.logRowFailure(r, "force password reset", ext, err)
				res.fail(err)
				continue
			}
			if !req.SendRecoveryEmail {
				continue
			}
			mail.Purpose = turnover.LinkRecovery
			if welcomeInstead = !pinOnFile; welcomeInstead {
				mail.Purpose = turnover.LinkWelcome
			}
		}
		switch res.Email = s.mail(r, mail); {
		case res.Email == "failed" && req.Action == "send_welcome_email":
			res.fail(turnover.Errorf(turnover.EINTERNAL, "The welcome email could not be queued; try again."))
		case res.Email == "queued" && welcomeInstead:
			res.Email = "queued_welcome"
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Results []rowResult `json:"results"`
	}{results})
	return nil
}
