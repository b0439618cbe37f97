package setup_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// memory is an in-memory setup.Store with DynamoDB's semantics: one link per user,
// redemption conditional on hash and validity.
type memory struct {
	mu       sync.Mutex
	links    map[string]turnover.SetupLink
	active   map[string]string // user -> password hash
	failures map[string]int
	markers  map[string]bool
	users    map[string]turnover.User // by domain/extension
}

func (m *memory) GetUser(_ context.Context, domain, ext string) (turnover.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[domain+"/"+ext]
	if !ok {
		return u, turnover.Errorf(turnover.ENOTFOUND, "no such user")
	}
	return u, nil
}

func newMemory() *memory {
	return &memory{links: map[string]turnover.SetupLink{}, active: map[string]string{}, failures: map[string]int{}, markers: map[string]bool{}, users: map[string]turnover.User{}}
}

func (m *memory) PutSetupLink(_ context.Context, domain, ext string, l turnover.SetupLink) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.links[domain+"/"+ext] = l
	return nil
}

func (m *memory) GetSetupLink(_ context.Context, domain, ext string) (*turnover.SetupLink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.links[domain+"/"+ext]; ok {
		return &l, nil
	}
	return nil, nil
}

func (m *memory) RedeemSetupLink(_ context.Context, domain, ext, hash string, now time.Time, pw, pin string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[domain+"/"+ext]
	if !ok || l.TokenHash != hash || !now.Before(l.ValidUntil) {
		return false, nil
	}
	delete(m.links, domain+"/"+ext)
	m.active[domain+"/"+ext] = pw
	return true, nil
}

func (m *memory) FailedSetups(_ context.Context, username string, _ time.Time, _ time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures[username], nil
}

func (m *memory) RecordFailedSetup(_ context.Context, username string, _ time.Time, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures[username]++
	return nil
}

func (m *memory) ClaimMailMarker(_ context.Context, domain, scope, ext string, _ time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := domain + "/" + scope + "/" + ext
	if m.markers[k] {
		return false, nil
	}
	m.markers[k] = true
	return true, nil
}

func (m *memory) ReleaseMailMarker(_ context.Context, domain, scope, ext string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.markers, domain+"/"+scope+"/"+ext)
	return nil
}

type sent struct{ to, subject, text, html string }

type outbox struct {
	mu   sync.Mutex
	mail []sent
	fail error
}

func (o *outbox) Send(_ context.Context, to, subject, text, html string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.mail = append(o.mail, sent{to, subject, text, html})
	return nil
}

// plain accepts any password of 8+ characters and any 4+ digit PIN, and "hashes" by
// prefixing, which is all these tests need.
type plain struct{}

func (plain) CheckPassword(pw string) error {
	if len(pw) < 8 {
		return turnover.Errorf(turnover.EINVALID, "short")
	}
	return nil
}
func (plain) CheckPIN(pin, _ string) error {
	if len(pin) < 4 {
		return turnover.Errorf(turnover.EINVALID, "short")
	}
	return nil
}
func (plain) Hash(s string) (string, error) { return "hashed:" + s, nil }

var start = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func newService(t *testing.T) (*setup.Service, *memory, *outbox, *time.Time) {
	t.Helper()
	st, out := newMemory(), &outbox{}
	svc := setup.New(st, out, plain{}, setup.Config{PortalURL: "https://portal.example.com/", Brand: "Nifty Phones", LinkTTL: 168 * time.Hour})
	now := start
	svc.Now = func() time.Time { return now }
	return svc, st, out, &now
}

// invite mails a welcome link to 1005 and returns the link's username and token.
func invite(t *testing.T, svc *setup.Service, out *outbox, scope string) (username, token string) {
	t.Helper()
	ok, err := svc.Invite(context.Background(), setup.Invitation{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", FirstName: "Ann", Purpose: turnover.LinkWelcome, Scope: scope})
	if err != nil || !ok {
		t.Fatalf("invite: %v %v", ok, err)
	}
	m := out.mail[len(out.mail)-1]
	i := strings.Index(m.text, "https://")
	link, err := url.Parse(strings.Fields(m.text[i:])[0])
	if err != nil {
		t.Fatal(err)
	}
	return link.Query().Get("username"), link.Query().Get("auth_code")
}

func TestWelcomeMail(t *testing.T) {
	svc, st, out, _ := newService(t)
	username, token := invite(t, svc, out, "job-1")
	m := out.mail[0]
	if m.to != "ann@example.com" || !strings.Contains(m.subject, "Nifty Phones") {
		t.Errorf("mail to %q subject %q", m.to, m.subject)
	}
	for _, want := range []string{"Login: 1005@niftywidgets", "Extension: 1005", "168 hours", "https://portal.example.com/portal/resets?auth_code=" + token + "&username=MTAwNUBuaWZ0eXdpZGdldHM%3D&lang=en_us\n"} {
		if !strings.Contains(m.text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.text)
		}
	}
	for _, want := range []string{"1005@niftywidgets", "Set up my account", "168 hours", "auth_code=" + token} {
		if !strings.Contains(m.html, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if strings.Contains(m.html, "<img") || strings.Contains(m.html, "<script") {
		t.Errorf("html has images or scripts")
	}
	if username != "MTAwNUBuaWZ0eXdpZGdldHM=" || len(token) != 43 {
		t.Errorf("username %q, token %q", username, token)
	}
	l := st.links["niftywidgets/1005"]
	if l.TokenHash == token || strings.Contains(l.TokenHash, token) || len(l.TokenHash) != 64 {
		t.Errorf("stored %q: only the token's SHA-256 may be kept", l.TokenHash)
	}
	if ok, err := svc.Invite(context.Background(), setup.Invitation{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", Purpose: turnover.LinkWelcome, Scope: "job-1"}); ok || err != nil || len(out.mail) != 1 {
		t.Errorf("a retried step mailed again: %v %v, %d mails", ok, err, len(out.mail))
	}
}

func TestFailedSendCanBeRetried(t *testing.T) {
	svc, _, out, _ := newService(t)
	out.fail = errors.New("throttled")
	if _, err := svc.Invite(context.Background(), setup.Invitation{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", Purpose: turnover.LinkWelcome, Scope: "s"}); err == nil {
		t.Fatal("a failed send must fail the invitation")
	}
	out.fail = nil
	invite(t, svc, out, "s")
	if len(out.mail) != 1 {
		t.Errorf("%d mails after the retry, want 1", len(out.mail))
	}
}

func TestExpiry(t *testing.T) {
	for _, tt := range []struct {
		after time.Duration
		ok    bool
	}{{168*time.Hour - time.Second, true}, {168*time.Hour + time.Second, false}, {168 * time.Hour, false}} {
		svc, _, out, now := newService(t)
		username, token := invite(t, svc, out, "s")
		*now = start.Add(tt.after)
		err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"})
		if (err == nil) != tt.ok {
			t.Errorf("after %v: %v, want ok=%v", tt.after, err, tt.ok)
		}
	}
}

func TestLinkFailuresLookAlike(t *testing.T) {
	svc, _, out, now := newService(t)
	username, token := invite(t, svc, out, "s")
	other := setup.Username("1099", "niftywidgets")
	cases := map[string]setup.Completion{
		"unknown user":  {Username: other, Token: token, Password: "correct horse", PIN: "2580"},
		"wrong token":   {Username: username, Token: strings.Repeat("A", 43), Password: "correct horse", PIN: "2580"},
		"garbage":       {Username: "%%%", Token: "x", Password: "correct horse", PIN: "2580"},
		"other domain":  {Username: setup.Username("1005", "otherdomain"), Token: token, Password: "correct horse", PIN: "2580"},
		"expired token": {Username: username, Token: token, Password: "correct horse", PIN: "2580"},
	}
	for name, c := range cases {
		if name == "expired token" {
			*now = start.Add(200 * time.Hour)
		}
		if err := svc.Complete(context.Background(), c); err != setup.ErrInvalidLink {
			t.Errorf("%s: %v, want ErrInvalidLink", name, err)
		}
	}
}

func TestSingleUseAndNewerLinkWins(t *testing.T) {
	svc, st, out, _ := newService(t)
	oldUser, oldToken := invite(t, svc, out, "first")
	username, token := invite(t, svc, out, "second")
	if err := svc.Complete(context.Background(), setup.Completion{Username: oldUser, Token: oldToken, Password: "correct horse", PIN: "2580"}); err != setup.ErrInvalidLink {
		t.Errorf("the older link still works: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"})
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two redemptions: %v and %v, want exactly one success", errs[0], errs[1])
	}
	if st.active["niftywidgets/1005"] != "hashed:correct horse" {
		t.Errorf("password stored as %q", st.active["niftywidgets/1005"])
	}
}

func TestBadSecretsKeepTheLink(t *testing.T) {
	svc, _, out, _ := newService(t)
	username, token := invite(t, svc, out, "s")
	err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "short", PIN: "2580"})
	if turnover.ErrorCode(err) != turnover.EINVALID {
		t.Fatalf("short password: %v", err)
	}
	if err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"}); err != nil {
		t.Errorf("after a refused password the link must still work: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	svc, _, out, _ := newService(t)
	username, token := invite(t, svc, out, "s")
	for range 10 {
		_ = svc.Complete(context.Background(), setup.Completion{Username: username, Token: strings.Repeat("B", 43), Password: "correct horse", PIN: "2580"})
	}
	if err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"}); err != setup.ErrTooManyAttempts {
		t.Errorf("after 10 failures: %v, want ErrTooManyAttempts", err)
	}
}

func TestDeliverMailsThePersonOnFileOncePerScope(t *testing.T) {
	store, out := newMemory(), &outbox{}
	store.users["niftywidgets/1005"] = turnover.User{Domain: "niftywidgets", Extension: "1005", FirstName: "Ann", Email: "ann@example.com"}
	store.users["niftywidgets/1006"] = turnover.User{Domain: "niftywidgets", Extension: "1006"}
	svc := setup.New(store, out, plain{}, setup.Config{PortalURL: "https://portal.example.com", Brand: "turnover", LinkTTL: time.Hour})
	req := turnover.MailRequest{Domain: "niftywidgets", Extension: "1005", Purpose: turnover.LinkWelcome, Scope: "job-1"}
	for range 2 {
		if _, err := svc.Deliver(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.mail) != 1 || out.mail[0].to != "ann@example.com" || !strings.Contains(out.mail[0].text, "Ann") {
		t.Errorf("mail = %+v, want one to ann@example.com", out.mail)
	}
	for ext, want := range map[string]string{"1006": turnover.EUNPROCESSABLE, "4242": turnover.ENOTFOUND} {
		req.Extension = ext
		if _, err := svc.Deliver(context.Background(), req); turnover.ErrorCode(err) != want {
			t.Errorf("deliver to %s: %v, want %s", ext, err, want)
		}
	}
}
