// Package setup lets a person into an extension: it issues setup links (welcome and
// recovery), mails them, and finishes setup when the person sets a password and
// voicemail PIN. A link is the only way into an account made by a recycle, so it is
// treated like a password-reset link: a token of 256 bits from crypto/rand, stored only
// as its SHA-256 hash, checked for expiry in code, used once, and replaced by any newer
// link.
package setup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"turnover/internal/turnover"
)

// Store keeps links, attempts and mail markers, and knows who is on file.
type Store interface {
	GetUser(ctx context.Context, domain, ext string) (turnover.User, error)
	PutSetupLink(ctx context.Context, domain, ext string, l turnover.SetupLink) error
	GetSetupLink(ctx context.Context, domain, ext string) (*turnover.SetupLink, error)
	RedeemSetupLink(ctx context.Context, domain, ext, tokenHash string, now time.Time, passwordHash, pinHash string) (bool, error)
	FailedSetups(ctx context.Context, username string, now time.Time, window time.Duration) (int, error)
	RecordFailedSetup(ctx context.Context, username string, now time.Time, window time.Duration) error
	ClaimMailMarker(ctx context.Context, domain, scope, ext string, keep time.Duration) (bool, error)
	ReleaseMailMarker(ctx context.Context, domain, scope, ext string) error
}

// Mailer sends one message with a plain text and an HTML body.
type Mailer interface {
	Send(ctx context.Context, to, subject, text, html string) error
}

// Secrets checks and hashes what a person sets.
type Secrets interface {
	CheckPassword(pw string) error
	CheckPIN(pin, extension string) error
	Hash(secret string) (string, error)
}

// Config says how links look and how long they last.
type Config struct {
	// PortalURL is the portal's base URL; links point at its /portal/resets page.
	PortalURL string
	// Brand is the product name mails are signed with.
	Brand string
	// LinkTTL is how long a link stays valid.
	LinkTTL time.Duration
}

// Service issues links and finishes setup.
type Service struct {
	store   Store
	mailer  Mailer
	secrets Secrets
	cfg     Config
	// Now is the clock; tests move it.
	Now func() time.Time
}

// New returns the setup service.
func New(store Store, mailer Mailer, secrets Secrets, cfg Config) *Service {
	return &Service{store: store, mailer: mailer, secrets: secrets, cfg: cfg, Now: time.Now}
}

const (
	// attemptWindow and maxAttempts rate-limit failed setups per username.
	attemptWindow = 15 * time.Minute
	maxAttempts   = 10
	// markerKept is how long a mail marker prevents a second copy.
	markerKept = 30 * 24 * time.Hour
)

// Deliver mails the link a queued request asks for to the person on file for the
// extension. It reports false, and does nothing, when the request's scope mailed the user
// already. It returns an ENOTFOUND error for a user that is gone and an EUNPROCESSABLE
// error for one without an email address; other errors may pass when tried again.
func (s *Service) Deliver(ctx context.Context, req turnover.MailRequest) (bool, error) {
	u, err := s.store.GetUser(ctx, req.Domain, req.Extension)
	if err != nil {
		return false, err
	}
	return s.Invite(ctx, Invitation{
		Domain: req.Domain, Extension: req.Extension, Email: u.Email, FirstName: u.FirstName,
		Purpose: req.Purpose, Scope: req.Scope,
	})
}

// Invitation is one link to mail: to whom, for which extension, and under which scope
// (a job or request id), so a retried step never mails twice.
type Invitation struct {
	Domain    string
	Extension string
	Email     string
	FirstName string
	Purpose   turnover.LinkPurpose
	Scope     string
}

// Invite issues a new link for the user, replacing any older one, and mails it. It
// reports false, and does nothing, when this scope mailed the user already.
func (s *Service) Invite(ctx context.Context, inv Invitation) (bool, error) {
	if !turnover.ValidEmail(inv.Email) {
		return false, turnover.Errorf(turnover.EUNPROCESSABLE, "Extension %s has no email address on file to send a link to.", inv.Extension)
	}
	claimed, err := s.store.ClaimMailMarker(ctx, inv.Domain, inv.Scope, inv.Extension, markerKept)
	if err != nil || !claimed {
		return false, err
	}
	if err := s.invite(ctx, inv); err != nil {
		if rerr := s.store.ReleaseMailMarker(ctx, inv.Domain, inv.Scope, inv.Extension); rerr != nil {
			err = fmt.Errorf("%w (and %v)", err, rerr)
		}
		return false, err
	}
	return true, nil
}

func (s *Service) invite(ctx context.Context, inv Invitation) error {
	token, hash, err := newToken()
	if err != nil {
		return err
	}
	now := s.Now()
	link := turnover.SetupLink{TokenHash: hash, Purpose: inv.Purpose, IssuedAt: now, ValidUntil: now.Add(s.cfg.LinkTTL)}
	if err := s.store.PutSetupLink(ctx, inv.Domain, inv.Extension, link); err != nil {
		return err
	}
	m, err := render(mailData{
		Brand: s.cfg.Brand, FirstName: inv.FirstName, Login: turnover.Login(inv.Extension, inv.Domain),
		Extension: inv.Extension, Link: s.LinkURL(inv.Domain, inv.Extension, token), Hours: int(s.cfg.LinkTTL.Hours()),
		Recovery: inv.Purpose == turnover.LinkRecovery,
	})
	if err != nil {
		return err
	}
	return s.mailer.Send(ctx, inv.Email, m.subject, m.text, m.html)
}

// LinkURL is the setup page's address for a token:
// {portal}/portal/resets?auth_code=TOKEN&username=BASE64(EXT@DOMAIN)&lang=en_us, its
// parameters in the portal's order (url.Values would sort them) and each escaped.
func (s *Service) LinkURL(domain, ext, token string) string {
	return strings.TrimRight(s.cfg.PortalURL, "/") + "/portal/resets?auth_code=" + url.QueryEscape(token) +
		"&username=" + url.QueryEscape(Username(ext, domain)) + "&lang=en_us"
}

// Username is how links name a user: base64 of EXT@DOMAIN.
func Username(ext, domain string) string {
	return base64.StdEncoding.EncodeToString([]byte(turnover.Login(ext, domain)))
}

var (
	loginPattern = regexp.MustCompile(`^([0-9]{2,10})@([a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?)$`)
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// ParseUsername reads the extension and domain out of a link's username.
func ParseUsername(username string) (ext, domain string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(username)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(username); err != nil {
			return "", "", false
		}
	}
	m := loginPattern.FindStringSubmatch(string(raw))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// newToken returns a fresh token of 256 bits and its hash.
func newToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("make token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token), nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ErrInvalidLink is the one answer to a link that is not valid: unknown user, wrong
// token, used or expired link alike, so nobody can tell them apart.
var ErrInvalidLink = &turnover.Error{Code: "invalid_setup_link", Message: "This setup link is not valid or has expired. Ask your office manager for a new one."}

// ErrTooManyAttempts answers a username with too many failed attempts.
var ErrTooManyAttempts = &turnover.Error{Code: "too_many_attempts", Message: "Too many attempts with this link. Wait 15 minutes, then try again."}

// Check tells whether a link is live, without using it, and what it is for.
func (s *Service) Check(ctx context.Context, username, token string) (turnover.LinkPurpose, error) {
	ext, domain, ok := ParseUsername(username)
	if !ok || !tokenPattern.MatchString(token) {
		return "", ErrInvalidLink
	}
	l, err := s.store.GetSetupLink(ctx, domain, ext)
	if err != nil {
		return "", err
	}
	if l == nil || l.TokenHash != hashToken(token) || !s.Now().Before(l.ValidUntil) {
		return "", ErrInvalidLink
	}
	return l.Purpose, nil
}

// Completion is what a person sends to finish setup. PIN is required for a welcome
// link and ignored for a recovery link.
type Completion struct {
	Username string
	Token    string
	Password string
	PIN      string
}

// Complete finishes setup: the link is used once, the password and PIN are stored as
// argon2id hashes and the user becomes active. Bad passwords or PINs are refused
// before the link is touched; any failure of the link itself is ErrInvalidLink.
func (s *Service) Complete(ctx context.Context, c Completion) error {
	now := s.Now()
	// Attempts count against the user a username names, however it is spelled: base64
	// decoding forgives padding, line breaks and stray low bits, so one user has
	// countless spellings, each of which would otherwise get attempts of its own.
	attempts := c.Username
	if ext, domain, ok := ParseUsername(c.Username); ok {
		attempts = Username(ext, domain)
	}
	failed, err := s.store.FailedSetups(ctx, attempts, now, attemptWindow)
	if err != nil {
		return err
	}
	if failed >= maxAttempts {
		return ErrTooManyAttempts
	}
	purpose, err := s.Check(ctx, c.Username, c.Token)
	if err == ErrInvalidLink {
		return s.failed(ctx, attempts, now)
	}
	if err != nil {
		return err
	}
	ext, domain, _ := ParseUsername(c.Username)
	if err := s.secrets.CheckPassword(c.Password); err != nil {
		return err
	}
	pinHash := ""
	if purpose == turnover.LinkWelcome {
		if err := s.secrets.CheckPIN(c.PIN, ext); err != nil {
			return err
		}
		if pinHash, err = s.secrets.Hash(c.PIN); err != nil {
			return err
		}
	}
	pwHash, err := s.secrets.Hash(c.Password)
	if err != nil {
		return err
	}
	ok, err := s.store.RedeemSetupLink(ctx, domain, ext, hashToken(c.Token), now, pwHash, pinHash)
	if err != nil {
		return err
	}
	if !ok {
		return s.failed(ctx, attempts, now)
	}
	return nil
}

func (s *Service) failed(ctx context.Context, username string, now time.Time) error {
	if err := s.store.RecordFailedSetup(ctx, username, now, attemptWindow); err != nil {
		return err
	}
	return ErrInvalidLink
}
