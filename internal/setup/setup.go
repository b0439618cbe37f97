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
	// RedeemSetupLink uses a link once and sets the user's secrets. With an empty
	// pinHash (a recovery link) it must refuse, reporting false, a user who has no
	// voicemail PIN or is waiting for setup: a recovery link never finishes a setup.
	RedeemSetupLink(ctx context.Context, domain, ext, tokenHash string, now time.Time, passwordHash, pinHash string) (bool, error)
	// AddSetupAttempts adds n (1 or -1) to username's attempts in the window that holds
	// now and returns the new count, in one atomic step, so that concurrent attempts
	// each see a count of their own.
	AddSetupAttempts(ctx context.Context, username string, now time.Time, window time.Duration, n int) (int, error)
	MailMarkers
}

// MailMarkers keep a scope's mail to an extension from going twice. A marker is
// "sending", held by one sender until leaseUntil, or "sent".
type MailMarkers interface {
	// ClaimMailMarker claims the mail for one sender until leaseUntil. It succeeds when
	// there is no marker or a "sending" one whose lease ran out by now; it reports false
	// when the mail was sent, and returns an error (one worth trying again later) while
	// another sender's lease runs.
	ClaimMailMarker(ctx context.Context, domain, scope, ext string, now, leaseUntil time.Time) (bool, error)
	// MarkMailSent records that the mail went; no claim succeeds until keepUntil.
	MarkMailSent(ctx context.Context, domain, scope, ext string, keepUntil time.Time) error
	// ReleaseMailMarker ends the lease that ends at leaseUntil, if it is still held, so
	// that a retry need not wait for it to run out. A "sent" marker stays.
	ReleaseMailMarker(ctx context.Context, domain, scope, ext string, leaseUntil time.Time) error
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
	// markerKept is how long a "sent" mail marker prevents a second copy.
	markerKept = 30 * 24 * time.Hour
	// mailLease is the shortest time a sender holds a mail; it always outlives the
	// sender's deadline by a minute. Longer than one send may take (the mailer function
	// runs 50 seconds at most, SES retries included), yet short enough that the queue,
	// which shows a message again after 60 seconds and gives up after 5 receives, finds
	// the lease run out when a sender died holding it.
	mailLease = 2 * time.Minute
	// markerTimeout bounds a marker's write after the send.
	markerTimeout = 5 * time.Second
)

// Deliver mails the link a queued request asks for to the person on file for the
// extension. It reports false, and does nothing, when the request's scope mailed the user
// already. A recovery link for someone who has not finished setup (status
// setup_required, or no voicemail PIN) goes out as a welcome link, which asks for a PIN
// too. It returns an ENOTFOUND error for a user that is gone and an EUNPROCESSABLE
// error for one without an email address; other errors may pass when tried again. See
// Invite for true with an error.
func (s *Service) Deliver(ctx context.Context, req turnover.MailRequest) (bool, error) {
	u, err := s.store.GetUser(ctx, req.Domain, req.Extension)
	if err != nil {
		return false, err
	}
	purpose := req.Purpose
	if purpose == turnover.LinkRecovery && (u.Status == turnover.StatusSetupRequired || u.VoicemailPINHash == "") {
		purpose = turnover.LinkWelcome
	}
	return s.Invite(ctx, Invitation{
		Domain: req.Domain, Extension: req.Extension, Email: u.Email, FirstName: u.FirstName,
		Purpose: purpose, Scope: req.Scope,
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
// reports false, and does nothing, when this scope mailed the user already; it returns
// an error, worth trying again later, while another sender of the same mail is at work.
// It reports true with an error when the mail went but could not be recorded as sent:
// do not send it again.
//
// Mail goes at least once, not at most once. The scope's marker is claimed with a lease
// ("sending") before the link is stored and mailed, and marked "sent" only once SES has
// accepted the message. A failed send releases the lease; when even that fails (the
// Lambda's time is up) the lease runs out by itself and a redelivery sends. A sender that
// dies after SES accepted the message but before the marker says "sent" leaves a lease
// that runs out too, and a redelivery then mails a second copy, whose new link replaces
// the first. We accept that rare duplicate: a lost welcome mail locks a new person out of
// an account that has no other way in.
func (s *Service) Invite(ctx context.Context, inv Invitation) (bool, error) {
	if !turnover.ValidEmail(inv.Email) {
		return false, turnover.Errorf(turnover.EUNPROCESSABLE, "Extension %s has no email address on file to send a link to.", inv.Extension)
	}
	now := s.Now()
	lease := mailLease
	if d, ok := ctx.Deadline(); ok {
		lease = max(lease, time.Until(d)+time.Minute) // outlive this sender, however long it may run
	}
	leaseUntil := now.Add(lease)
	claimed, err := s.store.ClaimMailMarker(ctx, inv.Domain, inv.Scope, inv.Extension, now, leaseUntil)
	if err != nil || !claimed {
		return false, err
	}
	if err := s.invite(ctx, inv, now); err != nil {
		// Best effort: if the release fails too, the lease runs out and a retry sends.
		rctx, cancel := detached(ctx)
		defer cancel()
		if rerr := s.store.ReleaseMailMarker(rctx, inv.Domain, inv.Scope, inv.Extension, leaseUntil); rerr != nil {
			err = fmt.Errorf("%w (and %v)", err, rerr)
		}
		return false, err
	}
	mctx, cancel := detached(ctx)
	defer cancel()
	if err := s.store.MarkMailSent(mctx, inv.Domain, inv.Scope, inv.Extension, now.Add(markerKept)); err != nil {
		return true, fmt.Errorf("mail to %s went, but was not recorded as sent: %w", inv.Extension, err)
	}
	return true, nil
}

// detached is a short context for writing a marker once ctx may be spent: its deadline
// is the likeliest reason a send fails, and a slow send can use it up too.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), markerTimeout)
}

func (s *Service) invite(ctx context.Context, inv Invitation, now time.Time) error {
	token, hash, err := newToken()
	if err != nil {
		return err
	}
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

// Check tells whether a link is live, without using it, and what it is for. It counts
// as an attempt at the link as Complete does: a link that is not valid is
// ErrInvalidLink and counts against the user the username names; past the limit the
// answer is ErrTooManyAttempts, and the link is not even looked at.
func (s *Service) Check(ctx context.Context, username, token string) (turnover.LinkPurpose, error) {
	l, err := s.open(ctx, username, token, s.Now())
	if err != nil {
		return "", err
	}
	return l.Purpose, nil
}

// open counts an attempt at a link, then, within the limit, checks the link. The
// attempt is counted first, in one atomic step that returns the new count, so that
// concurrent attempts cannot all pass the limit before any of them is counted; an
// attempt that finds the link live is given back, so that only failures stay counted.
func (s *Service) open(ctx context.Context, username, token string, now time.Time) (*turnover.SetupLink, error) {
	attempts := attemptsKey(username)
	n, err := s.store.AddSetupAttempts(ctx, attempts, now, attemptWindow, 1)
	if err != nil {
		return nil, err
	}
	if n > maxAttempts {
		return nil, ErrTooManyAttempts
	}
	l, err := s.link(ctx, username, token, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.AddSetupAttempts(ctx, attempts, now, attemptWindow, -1); err != nil {
		return nil, err
	}
	return l, nil
}

// attemptsKey is the user a username names, however it is spelled: base64 decoding
// forgives padding, line breaks and stray low bits, so one user has countless
// spellings, each of which would otherwise get attempts of its own.
func attemptsKey(username string) string {
	if ext, domain, ok := ParseUsername(username); ok {
		return Username(ext, domain)
	}
	return username
}

// link returns the live link a username and token name, or ErrInvalidLink.
func (s *Service) link(ctx context.Context, username, token string, now time.Time) (*turnover.SetupLink, error) {
	ext, domain, ok := ParseUsername(username)
	if !ok || !tokenPattern.MatchString(token) {
		return nil, ErrInvalidLink
	}
	l, err := s.store.GetSetupLink(ctx, domain, ext)
	if err != nil {
		return nil, err
	}
	if l == nil || l.TokenHash != hashToken(token) || !now.Before(l.ValidUntil) {
		return nil, ErrInvalidLink
	}
	return l, nil
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
// before the link is touched; any failure of the link itself is ErrInvalidLink, and
// counts against the user, as Check does; past the limit it is ErrTooManyAttempts. A
// recovery link of a user who has no voicemail PIN is not valid: it never makes such a
// user active.
func (s *Service) Complete(ctx context.Context, c Completion) error {
	now := s.Now()
	l, err := s.open(ctx, c.Username, c.Token, now)
	if err != nil {
		return err
	}
	ext, domain, _ := ParseUsername(c.Username)
	if err := s.secrets.CheckPassword(c.Password); err != nil {
		return err
	}
	pinHash := ""
	if l.Purpose == turnover.LinkWelcome {
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
		// Used meanwhile, replaced, or a recovery link of a user without a PIN.
		if _, err := s.store.AddSetupAttempts(ctx, attemptsKey(c.Username), now, attemptWindow, 1); err != nil {
			return err
		}
		return ErrInvalidLink
	}
	return nil
}
