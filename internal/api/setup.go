package api

import (
	"context"
	_ "embed"
	"html/template"
	"net/http"
	"strings"

	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// Setup checks setup links and finishes account setup.
type Setup interface {
	Check(ctx context.Context, username, token string) (turnover.LinkPurpose, error)
	Complete(ctx context.Context, c setup.Completion) error
}

// Mail queues setup-link mail; the mailer sends it apart from the request.
type Mail interface {
	Request(ctx context.Context, reqs []turnover.MailRequest) error
}

var (
	//go:embed setup.html.tmpl
	setupPageSource string
	setupPage       = template.Must(template.New("setup").Parse(setupPageSource))
)

type setupPageData struct {
	Title    string
	Login    string
	Username string
	Token    string
	PIN      bool
	Error    string
	Done     bool
}

// pageHeaders keep a page holding a token from leaking it: no referrer, no caching, no
// framing, nothing loaded from elsewhere.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

func writePage(w http.ResponseWriter, status int, d setupPageData) {
	pageHeaders(w)
	w.WriteHeader(status)
	_ = setupPage.Execute(w, d)
}

// setupForm is the page a setup link opens: a form for a new password and, for a
// welcome link, a voicemail PIN. A link that is not valid, for whatever reason, gets the
// same page. A failed opening counts against the user as a failed setup does, and the
// page answers 429 past the limit, so that guessing here is no cheaper than there.
func (s *Server) setupForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	username, token := q.Get("username"), q.Get("auth_code")
	purpose, err := s.Setup.Check(r.Context(), username, token)
	if err != nil {
		status := http.StatusBadRequest
		switch turnover.ErrorCode(err) {
		case "too_many_attempts":
			status = http.StatusTooManyRequests
		case turnover.EINTERNAL:
			s.Log.ErrorContext(r.Context(), "setup page failed", "apiRequestId", requestID(r), "error", err)
		}
		writePage(w, status, setupPageData{Title: "This link does not work", Error: turnover.ErrorMessage(err)})
		return
	}
	ext, domain, _ := setup.ParseUsername(username)
	title := "Set up your phone account"
	if purpose == turnover.LinkRecovery {
		title = "Set a new password"
	}
	writePage(w, http.StatusOK, setupPageData{Title: title, Login: turnover.Login(ext, domain), Username: username, Token: token, PIN: purpose == turnover.LinkWelcome})
}

type setupRequest struct {
	Username     string `json:"username"`
	AuthCode     string `json:"authCode"`
	Password     string `json:"password"`
	VoicemailPIN string `json:"voicemailPin"`
}

// completeSetup finishes setup, from the page's form or as JSON. Its answers never say
// whether a user exists.
func (s *Server) completeSetup(w http.ResponseWriter, r *http.Request) {
	var req setupRequest
	form := strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
	if form {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writePage(w, http.StatusBadRequest, setupPageData{Title: "Something is missing", Error: "The form could not be read; open the link from your mail again."})
			return
		}
		req = setupRequest{Username: r.PostForm.Get("username"), AuthCode: r.PostForm.Get("auth_code"), Password: r.PostForm.Get("password"), VoicemailPIN: r.PostForm.Get("voicemail_pin")}
	} else if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	err := s.Setup.Complete(r.Context(), setup.Completion{Username: req.Username, Token: req.AuthCode, Password: req.Password, PIN: req.VoicemailPIN})
	status := http.StatusOK
	switch code := turnover.ErrorCode(err); {
	case err == nil:
	case code == "too_many_attempts":
		status = http.StatusTooManyRequests
	case code == turnover.EINTERNAL:
		s.Log.ErrorContext(r.Context(), "setup failed", "apiRequestId", requestID(r), "error", err)
		status = http.StatusInternalServerError
	default:
		status = http.StatusBadRequest
	}
	if form {
		d := setupPageData{Title: "You are all set", Done: true}
		if err != nil {
			d = setupPageData{Title: "Setup did not go through", Error: turnover.ErrorMessage(err)}
			if code := turnover.ErrorCode(err); code == turnover.EINVALID {
				// The link still works: show the form again.
				if purpose, cerr := s.Setup.Check(r.Context(), req.Username, req.AuthCode); cerr == nil {
					ext, domain, _ := setup.ParseUsername(req.Username)
					d.Login, d.Username, d.Token, d.PIN = turnover.Login(ext, domain), req.Username, req.AuthCode, purpose == turnover.LinkWelcome
				}
			}
		}
		writePage(w, status, d)
		return
	}
	if err != nil {
		var body errorBody
		body.Error.Code, body.Error.Message = turnover.ErrorCode(err), turnover.ErrorMessage(err)
		writeJSON(w, status, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": string(turnover.StatusActive)})
}
