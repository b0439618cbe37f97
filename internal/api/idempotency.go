package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"turnover/internal/turnover"
)

// Idempotency remembers each domain's Idempotency-Keys and the responses they got.
type Idempotency interface {
	ClaimIdempotencyKey(ctx context.Context, domain, key, requestHash string, ttl time.Duration) (*turnover.IdempotencyRecord, error)
	CompleteIdempotencyKey(ctx context.Context, domain, key string, status int, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, domain, key string) error
	FailIdempotencyKey(ctx context.Context, domain, key string) error
}

const (
	// idempotencyTTL is how long a key is remembered: at least 14 days.
	idempotencyTTL = 15 * 24 * time.Hour
	// maxIdempotencyKey is the longest Idempotency-Key accepted.
	maxIdempotencyKey = 255
	// inProgressWait is how long a repeated request waits for the first to finish.
	inProgressWait = 10 * time.Second
)

type handlerFunc func(http.ResponseWriter, *http.Request, turnover.Identity) error

// keyReused is the answer to an Idempotency-Key sent with another request than the one
// it was first used with.
const keyReused = "This Idempotency-Key was used with a different request; use a new key for a new request."

type idempotencyCtx struct{}

// claim is a request's checked Idempotency-Key and the hash of the request.
type claim struct{ key, hash string }

// idempotencyKey is the request's Idempotency-Key, once idempotent has checked it.
func idempotencyKey(r *http.Request) string {
	c, _ := r.Context().Value(idempotencyCtx{}).(claim)
	return c.key
}

// idempotencyHash identifies the request idempotent has let through (requestHash), so
// what it creates can tell a retry of it from another request with the same key.
func idempotencyHash(r *http.Request) string {
	c, _ := r.Context().Value(idempotencyCtx{}).(claim)
	return c.hash
}

// idempotent makes a POST that changes things safe to retry. It requires an
// Idempotency-Key header; the first request with a key runs, and any later one with the
// same key and the same request gets the first one's response without running again,
// even while the first is still running. The same key with another request is refused
// with 422. A refused request (4xx) changed nothing, so its key is released; one that
// failed on our side (5xx) may have started something, so only the same request may
// take its key again, and finishes what the first began.
func (s *Server) idempotent(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id turnover.Identity) error {
		key := r.Header.Get("Idempotency-Key")
		if err := checkIdempotencyKey(key); err != nil {
			return err
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			return decodeError(err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		hash := requestHash(r, body)
		domain := r.PathValue("domain")
		deadline := time.Now().Add(inProgressWait)
		for {
			rec, err := s.Idempotency.ClaimIdempotencyKey(r.Context(), domain, key, hash, idempotencyTTL)
			switch {
			case err != nil:
				return err
			case rec == nil: // claimed: run the request below
			case rec.RequestHash != hash:
				return turnover.Errorf(turnover.EUNPROCESSABLE, keyReused)
			case rec.Complete:
				w.Header().Set("Idempotent-Replayed", "true")
				writeRaw(w, rec.Status, rec.Body)
				return nil
			case time.Now().After(deadline):
				return turnover.Errorf(turnover.ECONFLICT, "A request with this Idempotency-Key is still being handled; retry it shortly.")
			default:
				if err := sleep(r.Context(), 100*time.Millisecond); err != nil {
					return err
				}
				continue
			}
			break
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		if err := h(rec, r.WithContext(context.WithValue(r.Context(), idempotencyCtx{}, claim{key, hash})), id); err != nil {
			s.writeError(rec, r, err)
		}
		switch rec.status / 100 {
		case 2:
			err = s.Idempotency.CompleteIdempotencyKey(r.Context(), domain, key, rec.status, rec.body.Bytes())
		case 4: // refused: nothing changed, the key is free again
			err = s.Idempotency.ReleaseIdempotencyKey(r.Context(), domain, key)
		default: // failed part way: only this same request may take the key again
			err = s.Idempotency.FailIdempotencyKey(r.Context(), domain, key)
		}
		if err != nil {
			s.Log.ErrorContext(r.Context(), "idempotency record not updated", "apiRequestId", requestID(r), "domain", domain, "error", err)
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		return nil
	}
}

func checkIdempotencyKey(key string) error {
	if key == "" {
		return turnover.Errorf(turnover.EINVALID, "Send an Idempotency-Key header (for example a random UUID) so that a retried request cannot start a second job.")
	}
	if len(key) > maxIdempotencyKey {
		return turnover.Errorf(turnover.EINVALID, "The Idempotency-Key may hold at most %d characters.", maxIdempotencyKey)
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return turnover.Errorf(turnover.EINVALID, "The Idempotency-Key may hold only visible ASCII characters.")
		}
	}
	return nil
}

// requestHash identifies a request by route and body, compacted so that white space
// does not make two requests differ.
func requestHash(r *http.Request, body []byte) string {
	var compact bytes.Buffer
	if json.Compact(&compact, body) != nil {
		compact.Reset()
		compact.Write(body)
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(compact.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

// recorder keeps a response so it can be stored before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errors.Join(ctx.Err(), turnover.Errorf(turnover.ECONFLICT, "The request was cancelled while waiting."))
	case <-t.C:
		return nil
	}
}
