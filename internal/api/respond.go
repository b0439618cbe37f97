package api

import (
	stdjson "encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"turnover/internal/turnover"
)

var (
	domainPattern    = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)
	extensionPattern = regexp.MustCompile(`^[0-9]{2,10}$`)
	jobIDPattern     = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	digitsPattern    = regexp.MustCompile(`^[2-9]{1,32}$`)
)

func validDomain(s string) bool    { return domainPattern.MatchString(s) }
func validExtension(s string) bool { return extensionPattern.MatchString(s) }

// statusOf maps an application error code to its HTTP status. It is the only place
// that does.
func statusOf(code string) int {
	switch code {
	case turnover.EINVALID:
		return http.StatusBadRequest
	case turnover.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case turnover.EFORBIDDEN:
		return http.StatusForbidden
	case turnover.ENOTFOUND:
		return http.StatusNotFound
	case turnover.ECONFLICT:
		return http.StatusConflict
	case turnover.EUNPROCESSABLE:
		return http.StatusUnprocessableEntity
	case turnover.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers with the error's code and message. Internal errors are logged with
// their detail and answered with a plain message only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := turnover.ErrorCode(err)
	if code == turnover.EINTERNAL {
		s.Log.ErrorContext(r.Context(), "request failed", "apiRequestId", requestID(r),
			"route", r.Pattern, "domain", r.PathValue("domain"), "error", err)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = code, turnover.ErrorMessage(err)
	writeJSON(w, statusOf(code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = stdjson.NewEncoder(w).Encode(v)
}

// strict are the rules request bodies are read by: member names match the struct tags
// exactly (encoding/json would take "USERS" for "users"), a name given twice is refused
// (encoding/json keeps the last), and so is a member the request type does not have.
var strict = json.JoinOptions(
	json.MatchCaseInsensitiveNames(false),
	json.RejectUnknownMembers(true),
	jsontext.AllowDuplicateNames(false),
)

// decode reads a JSON body strictly: one object, no unknown, duplicate or wrongly
// cased member names, within the size limit, so no request can set what the API does
// not take (a status, a domain) or say two things at once.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := jsontext.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody), strict)
	if k := dec.PeekKind(); k != '{' && k != 0 { // 0: empty, or an error the next read reports
		return turnover.Errorf(turnover.EINVALID, "The body must hold a single JSON object.")
	}
	if err := json.UnmarshalDecode(dec, v, strict); err != nil {
		return decodeError(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return turnover.Errorf(turnover.EINVALID, "The body must hold a single JSON object.")
	}
	return nil
}

// decodeError says what is wrong with a body that could not be read.
func decodeError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		semantic *json.SemanticError
	)
	switch {
	case errors.As(err, &tooLarge):
		return turnover.Errorf(turnover.ETOOLARGE, "The body is larger than %d bytes.", maxBody)
	case errors.Is(err, io.EOF):
		return turnover.Errorf(turnover.EINVALID, "The body is empty; send a JSON object.")
	case errors.Is(err, jsontext.ErrDuplicateName):
		var syntax *jsontext.SyntacticError
		if errors.As(err, &syntax) {
			return turnover.Errorf(turnover.EINVALID, "Field %q is named twice.", memberPath(syntax.JSONPointer))
		}
	case errors.Is(err, json.ErrUnknownName) && errors.As(err, &semantic):
		return turnover.Errorf(turnover.EINVALID, "Unknown field %q.", memberPath(semantic.JSONPointer))
	case errors.As(err, &semantic):
		if semantic.JSONPointer == "" {
			return turnover.Errorf(turnover.EINVALID, "The body must hold a single JSON object.")
		}
		return turnover.Errorf(turnover.EINVALID, "Field %q has the wrong type.", memberPath(semantic.JSONPointer))
	case errors.As(err, new(*jsontext.SyntacticError)), errors.Is(err, io.ErrUnexpectedEOF):
		return turnover.Errorf(turnover.EINVALID, "The body is not valid JSON.")
	}
	return turnover.Errorf(turnover.EINVALID, "The body could not be read as JSON.")
}

// memberPath names a member by its path in the body, "recycle.0.email", as people read it.
func memberPath(p jsontext.Pointer) string {
	return strings.Join(slices.Collect(p.Tokens()), ".")
}
