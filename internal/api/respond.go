package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"

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
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly: one object, no unknown fields, within the size
// limit, so no request can set what the API does not take (a status, a domain).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return turnover.Errorf(turnover.EINVALID, "The body must hold a single JSON object.")
	}
	return nil
}

func decodeError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return turnover.Errorf(turnover.ETOOLARGE, "The body is larger than %d bytes.", maxBody)
	case errors.Is(err, io.EOF):
		return turnover.Errorf(turnover.EINVALID, "The body is empty; send a JSON object.")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return turnover.Errorf(turnover.EINVALID, "The body is not valid JSON.")
	case errors.As(err, &typeErr):
		return turnover.Errorf(turnover.EINVALID, "Field %q has the wrong type.", typeErr.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return turnover.Errorf(turnover.EINVALID, "Unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return turnover.Errorf(turnover.EINVALID, "The body could not be read as JSON.")
}
