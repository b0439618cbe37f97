package setup_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// memory is an in-memory setup.Store with DynamoDB's semantics: one link per user,
// redemption conditional on hash and validity (and, for a recovery link, on a PIN on
// file), attempts counted atomically, mail markers with a lease.
type memory struct {
	mu       sync.Mutex
	links    map[string]turnover.SetupLink
	active   map[string]string // user -> password hash
	failures map[string]int
	markers  map[string]marker
	users    map[string]turnover.User // by domain/extension
}

type marker struct {
	sent       bool
	leaseUntil time.Time
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
	return &memory{links: map[string]turnover.SetupLink{}, active: map[string]string{}, failures: map[string]int{}, markers: map[string]marker{}, users: map[string]turnover.User{}}
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

// RedeemSetupLink: users not in m.users are taken to have finished setup before, so
// that the tests of links alone need no profile.
func (m *memory) RedeemSetupLink(_ context.Context, domain, ext, hash string, now time.Time, pw, pin string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := domain + "/" + ext
	l, ok := m.links[k]
	if !ok || l.TokenHash != hash || !now.Before(l.ValidUntil) {
		return false, nil
	}
	u, known := m.users[k]
	if pin == "" && known && (u.VoicemailPINHash == "" || u.Status == turnover.StatusSetupRequired) {
		return false, nil
	}
	delete(m.links, k)
	m.active[k] = pw
	if known {
		u.PasswordHash, u.Status = pw, turnover.StatusActive
		if pin != "" {
			u.VoicemailPINHash = pin
		}
		m.users[k] = u
	}
	return true, nil
}

func (m *memory) AddSetupAttempts(_ context.Context, username string, _ time.Time, _ time.Duration, n int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures[username] += n
	if m.failures[username] == 0 {
		delete(m.failures, username)
	}
	return m.failures[username], nil
}

func (m *memory) ClaimMailMarker(_ context.Context, domain, scope, ext string, now, leaseUntil time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := domain + "/" + scope + "/" + ext
	switch mk, ok := m.markers[k]; {
	case ok && mk.sent:
		return false, nil
	case ok && now.Before(mk.leaseUntil):
		return false, errors.New("another delivery holds the mail")
	}
	m.markers[k] = marker{leaseUntil: leaseUntil}
	return true, nil
}

func (m *memory) MarkMailSent(_ context.Context, domain, scope, ext string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markers[domain+"/"+scope+"/"+ext] = marker{sent: true}
	return nil
}

func (m *memory) ReleaseMailMarker(_ context.Context, domain, scope, ext string, leaseUntil time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := domain + "/" + scope + "/" + ext
	if mk := m.markers[k]; !mk.sent && mk.leaseUntil.Equal(leaseUntil) {
		delete(m.markers, k)
	}
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

// leaseStore is the memory store whose release of a lease can be made to fail, as it
// does when the Lambda is stopped at its deadline, or to honour its context.
type leaseStore struct {
	*memory
	releaseLost bool
}

func (s leaseStore) ReleaseMailMarker(ctx context.Context, domain, scope, ext string, leaseUntil time.Time) error {
	if s.releaseLost {
		return errors.New("the function was stopped")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.memory.ReleaseMailMarker(ctx, domain, scope, ext, leaseUntil)
}

// slowSES holds a send with a deadline until the deadline passes, as SES throttling
// retried past the Lambda's time does; a send without one goes.
type slowSES struct{ outbox }

func (o *slowSES) Send(ctx context.Context, to, subject, text, html string) error {
	if _, ok := ctx.Deadline(); ok {
		<-ctx.Done()
		return ctx.Err()
	}
	return o.outbox.Send(ctx, to, subject, text, html)
}

// A mail cut off by the deadline is not lost: the queue's redelivery sends it, exactly
// once, at once when the lease could be released, after the lease otherwise.
func TestMailCutOffByTheDeadlineIsSentOnRedelivery(t *testing.T) {
	for _, tt := range []struct {
		name        string
		releaseLost bool
		wait        time.Duration // before the redelivery that sends
	}{
		{"released on a context of its own", false, 0},
		{"release lost, lease runs out", true, 10 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemory()
			st.users["niftywidgets/1005"] = turnover.User{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", Status: turnover.StatusActive, VoicemailPINHash: "x"}
			ses := &slowSES{}
			svc := setup.New(leaseStore{st, tt.releaseLost}, ses, plain{}, setup.Config{PortalURL: "https://p.example", Brand: "b", LinkTTL: time.Hour})
			now := start
			svc.Now = func() time.Time { return now }
			req := turnover.MailRequest{Domain: "niftywidgets", Extension: "1005", Purpose: turnover.LinkWelcome, Scope: "job-1"}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if sent, err := svc.Deliver(ctx, req); sent || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("first delivery: %v %v, want the deadline's error", sent, err)
			}
			if tt.wait > 0 {
				// While the lease runs, a redelivery sends nothing and asks to be tried again.
				now = start.Add(time.Minute)
				if sent, err := svc.Deliver(context.Background(), req); sent || err == nil || turnover.ErrorCode(err) != turnover.EINTERNAL || len(ses.mail) != 0 {
					t.Fatalf("redelivery within the lease: %v %v, %d mails; want a retryable error and no mail", sent, err, len(ses.mail))
				}
			}
			now = start.Add(tt.wait)
			if sent, err := svc.Deliver(context.Background(), req); !sent || err != nil || len(ses.mail) != 1 {
				t.Fatalf("redelivery: sent=%v err=%v mails=%d, want the one mail", sent, err, len(ses.mail))
			}
			now = now.Add(time.Hour)
			if sent, err := svc.Deliver(context.Background(), req); sent || err != nil || len(ses.mail) != 1 {
				t.Errorf("a later redelivery: sent=%v err=%v mails=%d, want nothing more sent", sent, err, len(ses.mail))
			}
		})
	}
}

// unmarked is the memory store that cannot record a mail as sent.
type unmarked struct{ *memory }

func (unmarked) MarkMailSent(context.Context, string, string, string, time.Time) error {
	return errors.New("throttled")
}

// A mail that went but could not be recorded is reported as sent, with the error, and
// the lease it holds keeps a redelivery from sending a second copy.
func TestMailSentButNotRecorded(t *testing.T) {
	st, out := newMemory(), &outbox{}
	svc := setup.New(unmarked{st}, out, plain{}, setup.Config{PortalURL: "https://p.example", Brand: "b", LinkTTL: time.Hour})
	inv := setup.Invitation{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", Purpose: turnover.LinkWelcome, Scope: "s"}
	if sent, err := svc.Invite(context.Background(), inv); !sent || err == nil {
		t.Fatalf("invite: %v %v, want sent with the error", sent, err)
	}
	if sent, err := svc.Invite(context.Background(), inv); sent || err == nil || len(out.mail) != 1 {
		t.Errorf("again within the lease: %v %v, %d mails; want no second copy", sent, err, len(out.mail))
	}
}

// slowLinks is the memory store whose link reads take a while, so that concurrent
// attempts overlap, and which counts the links it was asked for.
type slowLinks struct {
	*memory
	reads *atomic.Int32
}

func (s slowLinks) GetSetupLink(ctx context.Context, domain, ext string) (*turnover.SetupLink, error) {
	s.reads.Add(1)
	time.Sleep(5 * time.Millisecond)
	return s.memory.GetSetupLink(ctx, domain, ext)
}

// Failed attempts are limited wherever they come from (the page's Check, the form's
// Complete) and however many come at once: no more than the limit ever reach the link.
func TestAttemptsAreLimitedOnEveryPath(t *testing.T) {
	bad := strings.Repeat("B", 43)
	for _, tt := range []struct {
		name    string
		attempt func(svc *setup.Service, username string) error
	}{
		{"page", func(svc *setup.Service, username string) error {
			_, err := svc.Check(context.Background(), username, bad)
			return err
		}},
		{"form", func(svc *setup.Service, username string) error {
			return svc.Complete(context.Background(), setup.Completion{Username: username, Token: bad, Password: "correct horse", PIN: "2580"})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, out := newMemory(), &outbox{}
			reads := &atomic.Int32{}
			svc := setup.New(slowLinks{st, reads}, out, plain{}, setup.Config{PortalURL: "https://p.example", Brand: "b", LinkTTL: time.Hour})
			username, token := invite(t, svc, out, "s")
			// Opening the live link, however often, counts nothing.
			for range 20 {
				if _, err := svc.Check(context.Background(), username, token); err != nil {
					t.Fatal(err)
				}
			}
			reads.Store(0)
			var wg sync.WaitGroup
			var invalid, limited atomic.Int32
			for range 40 {
				wg.Go(func() {
					switch err := tt.attempt(svc, username); err {
					case setup.ErrInvalidLink:
						invalid.Add(1)
					case setup.ErrTooManyAttempts:
						limited.Add(1)
					default:
						t.Errorf("a bad attempt: %v", err)
					}
				})
			}
			wg.Wait()
			if invalid.Load() != 10 || limited.Load() != 30 || reads.Load() != 10 {
				t.Errorf("40 bad attempts at once: %d invalid, %d limited, %d link reads; want 10, 30, 10", invalid.Load(), limited.Load(), reads.Load())
			}
			if _, err := svc.Check(context.Background(), username, token); err != setup.ErrTooManyAttempts {
				t.Errorf("the page with the good token after them: %v, want ErrTooManyAttempts", err)
			}
			if err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"}); err != setup.ErrTooManyAttempts {
				t.Errorf("setup with the good token after them: %v, want ErrTooManyAttempts", err)
			}
		})
	}
}

// A recovery link never finishes a setup: a queued recovery mail for someone who has not
// set up the account goes out as a welcome link (password and PIN), and a recovery link
// of such a user does not work.
func TestRecoveryNeverSkipsThePIN(t *testing.T) {
	for _, tt := range []struct {
		name       string
		user       turnover.User
		wantLink   turnover.LinkPurpose
		wantPINSet bool
	}{
		{"set up", turnover.User{Status: turnover.StatusPasswordRequired, VoicemailPINHash: "hashed:1357"}, turnover.LinkRecovery, false},
		{"waiting for setup", turnover.User{Status: turnover.StatusSetupRequired}, turnover.LinkWelcome, true},
		{"active without a PIN", turnover.User{Status: turnover.StatusActive}, turnover.LinkWelcome, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, out := newMemory(), &outbox{}
			u := tt.user
			u.Domain, u.Extension, u.Email = "niftywidgets", "1005", "ann@example.com"
			st.users["niftywidgets/1005"] = u
			svc := setup.New(st, out, plain{}, setup.Config{PortalURL: "https://portal.example.com", Brand: "Nifty Phones", LinkTTL: time.Hour})
			if sent, err := svc.Deliver(context.Background(), turnover.MailRequest{Domain: "niftywidgets", Extension: "1005", Purpose: turnover.LinkRecovery, Scope: "req-1"}); !sent || err != nil {
				t.Fatalf("deliver: %v %v", sent, err)
			}
			m := out.mail[0]
			link, _ := url.Parse(strings.Fields(m.text[strings.Index(m.text, "https://"):])[0])
			username, token := link.Query().Get("username"), link.Query().Get("auth_code")
			if purpose, err := svc.Check(context.Background(), username, token); purpose != tt.wantLink || err != nil {
				t.Fatalf("the mailed link is %q (%v), want %q", purpose, err, tt.wantLink)
			}
			if welcome := strings.HasPrefix(m.subject, "Welcome"); welcome != (tt.wantLink == turnover.LinkWelcome) {
				t.Errorf("subject %q for a %s link", m.subject, tt.wantLink)
			}
			if tt.wantPINSet {
				if err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse"}); turnover.ErrorCode(err) != turnover.EINVALID {
					t.Errorf("setup without a PIN: %v, want EINVALID", err)
				}
			}
			if err := svc.Complete(context.Background(), setup.Completion{Username: username, Token: token, Password: "correct horse", PIN: "2580"}); err != nil {
				t.Fatalf("complete: %v", err)
			}
			got := st.users["niftywidgets/1005"]
			wantPIN := tt.user.VoicemailPINHash
			if tt.wantPINSet {
				wantPIN = "hashed:2580"
			}
			if got.Status != turnover.StatusActive || got.VoicemailPINHash != wantPIN {
				t.Errorf("after setup: status %s, PIN hash %q; want active, %q", got.Status, got.VoicemailPINHash, wantPIN)
			}
		})
	}
}

// The store's last word: a recovery link of a user without a PIN, however it came to
// be, is not valid and leaves the user waiting for setup.
func TestRecoveryLinkOfAUserWithoutPINIsRefused(t *testing.T) {
	st, out := newMemory(), &outbox{}
	st.users["niftywidgets/1005"] = turnover.User{Domain: "niftywidgets", Extension: "1005", Status: turnover.StatusSetupRequired}
	svc := setup.New(st, out, plain{}, setup.Config{PortalURL: "https://portal.example.com", Brand: "Nifty Phones", LinkTTL: time.Hour})
	if _, err := svc.Invite(context.Background(), setup.Invitation{Domain: "niftywidgets", Extension: "1005", Email: "ann@example.com", Purpose: turnover.LinkRecovery, Scope: "s"}); err != nil {
		t.Fatal(err)
	}
	link, _ := url.Parse(strings.Fields(out.mail[0].text[strings.Index(out.mail[0].text, "https://"):])[0])
	err := svc.Complete(context.Background(), setup.Completion{Username: link.Query().Get("username"), Token: link.Query().Get("auth_code"), Password: "correct horse"})
	if err != setup.ErrInvalidLink || st.users["niftywidgets/1005"].Status != turnover.StatusSetupRequired {
		t.Errorf("recovery of a user without a PIN: %v, status %s; want ErrInvalidLink and setup_required", err, st.users["niftywidgets/1005"].Status)
	}
}
