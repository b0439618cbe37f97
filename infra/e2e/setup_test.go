package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"turnover/internal/secret"
	"turnover/internal/setup"
	"turnover/internal/turnover"
)

type mailMessage struct {
	ID      string   `json:"id"`
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	HTML    string   `json:"html"`
}

var linkPattern = regexp.MustCompile(`https?://\S+/portal/resets\?\S+`)

// mailTo waits for the newest local mail to an address and returns it with its link.
func mailTo(t *testing.T, to string) (mailMessage, *url.URL) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(stack.APIURL + "/_local/mail")
		if err != nil {
			t.Fatal(err)
		}
		var box struct{ Messages []mailMessage }
		err = json.NewDecoder(resp.Body).Decode(&box)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range box.Messages {
			if len(m.To) == 1 && m.To[0] == to {
				link, err := url.Parse(linkPattern.FindString(m.Text))
				if err != nil || link.Host == "" {
					t.Fatalf("mail to %s has no setup link:\n%s", to, m.Text)
				}
				return m, link
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no mail to %s", to)
	return mailMessage{}, nil
}

// complete posts a setup as the page's script-free form would, in JSON.
func complete(t *testing.T, link *url.URL, password, pin string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{
		"username": link.Query().Get("username"), "authCode": link.Query().Get("auth_code"),
		"password": password, "voicemailPin": pin,
	})
	resp, err := apiClient(t).Post(stack.APIURL+"/v1/setup", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func openPage(t *testing.T, link *url.URL) (int, string, http.Header) {
	t.Helper()
	resp, err := apiClient(t).Get(link.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

func TestRecycleWelcomeAndSetup(t *testing.T) {
	domain := freshDomain(t, "welcome")
	tok := tokenFor(t, domain)
	j := runResetIn(t, tok, domain, map[string]any{
		"users":   []string{"1005"},
		"options": map[string]any{"recycle": true, "deleteVoicemailMessages": true},
		"recycle": []map[string]any{{"extension": "1005", "firstName": "Ann", "lastName": "Lee", "email": "ann.lee@" + domain + ".test", "department": "Sales", "sendWelcomeEmail": true}},
		"confirm": true,
	})
	if j.Status != "SUCCEEDED" || j.Users[0].Status != "recycled" {
		t.Fatalf("job = %+v", j)
	}
	m, link := mailTo(t, "ann.lee@"+domain+".test")
	for _, want := range []string{"1005@" + domain, "Extension: 1005", "168 hours"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.HasPrefix(link.String(), stack.APIURL+"/portal/resets?") || link.Query().Get("lang") != "en_us" {
		t.Errorf("link %s does not point at the local portal page", link)
	}
	if !strings.Contains(m.HTML, "Set up my account") || strings.Contains(m.HTML, "<img") {
		t.Errorf("html body:\n%s", m.HTML)
	}

	status, page, h := openPage(t, link)
	if status != 200 || !strings.Contains(page, `name="voicemail_pin"`) || h.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("setup page: %d, referrer policy %q:\n%s", status, h.Get("Referrer-Policy"), page)
	}
	if status, body := complete(t, link, "password1", "2580"); status != 400 || !strings.Contains(body, "invalid_request") {
		t.Errorf("a common password: %d %s", status, body)
	}
	if status, body := complete(t, link, "tangerine-sofa-42", "1005"); status != 400 {
		t.Errorf("the extension as PIN: %d %s", status, body)
	}
	if status, body := complete(t, link, "tangerine-sofa-42", "2580"); status != 200 || !strings.Contains(body, "active") {
		t.Fatalf("setup: %d %s", status, body)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1005", nil, &u)
	if u.Status != "active" || u.FirstName != "Ann" {
		t.Errorf("1005 after setup = %+v", u)
	}
	data, _, err := store().LoadUserData(context.Background(), domain, "1005")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := secret.Verify("tangerine-sofa-42", data.User.PasswordHash); !ok || err != nil {
		t.Errorf("stored password hash does not verify: %v", err)
	}
	if ok, _ := secret.Verify("2580", data.User.VoicemailPINHash); !ok {
		t.Errorf("stored PIN hash does not verify")
	}

	// The used link, an unknown user and a bad token look exactly alike.
	usedStatus, used := complete(t, link, "tangerine-sofa-43", "2580")
	unknown := *link
	q := unknown.Query()
	q.Set("username", setup.Username("1099", domain))
	unknown.RawQuery = q.Encode()
	unknownStatus, unknownBody := complete(t, &unknown, "tangerine-sofa-43", "2580")
	bad := *link
	q = bad.Query()
	q.Set("auth_code", strings.Repeat("A", 43))
	bad.RawQuery = q.Encode()
	badStatus, badBody := complete(t, &bad, "tangerine-sofa-43", "2580")
	if usedStatus != 400 || usedStatus != unknownStatus || usedStatus != badStatus || used != unknownBody || used != badBody {
		t.Errorf("used %d %s / unknown %d %s / bad %d %s: want one status and body", usedStatus, used, unknownStatus, unknownBody, badStatus, badBody)
	}
	if status, page, _ := openPage(t, link); status != 400 || strings.Contains(page, "<form") {
		t.Errorf("the used link still opens the form: %d", status)
	}
}

func TestWelcomeLinkRacesAndRecovery(t *testing.T) {
	domain := freshDomain(t, "links")
	tok := tokenFor(t, domain)
	var res struct {
		Results []struct{ Extension, Status, Email string }
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "send_welcome_email", "users": []string{"1004"}}, &res); status != 200 || res.Results[0].Email != "queued" {
		t.Fatalf("send welcome: %d %+v", status, res)
	}
	_, first := mailTo(t, "river.tam@"+domain+".example")
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "send_welcome_email", "users": []string{"1004"}}, &res); status != 200 {
		t.Fatalf("send welcome again: %d", status)
	}
	_, second := newestLink(t, "river.tam@"+domain+".example", first)
	if status, _ := complete(t, first, "tangerine-sofa-42", "2580"); status != 400 {
		t.Errorf("the older link still works after a new one: %d", status)
	}
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = complete(t, second, "tangerine-sofa-42", "2580")
		}()
	}
	wg.Wait()
	if wins := btoi(statuses[0] == 200) + btoi(statuses[1] == 200); wins != 1 {
		t.Errorf("two redemptions: %v, want exactly one 200", statuses)
	}

	// Force a password reset with a recovery mail; the link sets a new password only.
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "force_password_reset", "users": []string{"1002"}, "sendRecoveryEmail": true}, &res); status != 200 || res.Results[0].Status != "done" || res.Results[0].Email != "queued" {
		t.Fatalf("force password reset: %d %+v", status, res)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1002", nil, &u)
	if u.Status != "password_required" {
		t.Errorf("1002 after force reset = %s", u.Status)
	}
	m, link := mailTo(t, "kaylee.frye@"+domain+".example")
	if !strings.Contains(m.Subject, "new password") {
		t.Errorf("recovery subject %q", m.Subject)
	}
	if status, page, _ := openPage(t, link); status != 200 || strings.Contains(page, "voicemail_pin") {
		t.Errorf("recovery page: %d, asks for a PIN: %v", status, strings.Contains(page, "voicemail_pin"))
	}
	form := url.Values{"username": {link.Query().Get("username")}, "auth_code": {link.Query().Get("auth_code")}, "password": {"marmalade-kite-7"}}
	resp, err := apiClient(t).PostForm(stack.APIURL+"/v1/setup", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "All set") {
		t.Errorf("form post: %d\n%s", resp.StatusCode, page)
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1002", nil, &u)
	if u.Status != "active" {
		t.Errorf("1002 after recovery = %s", u.Status)
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "force_password_reset", "users": []string{"1003"}}, &res); status != 200 || res.Results[0].Status != "failed" {
		t.Errorf("forcing one's own password reset: %d %+v", status, res)
	}
}

// newestLink waits for a mail to an address whose link differs from old.
func newestLink(t *testing.T, to string, old *url.URL) (mailMessage, *url.URL) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m, link := mailTo(t, to); link.String() != old.String() {
			return m, link
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no second mail to %s", to)
	return mailMessage{}, nil
}

// The link's expiry against the real table, with the service's clock moved.
func TestLinkExpiryOnTheRealStore(t *testing.T) {
	domain := freshDomain(t, "expiry")
	var last string
	mailer := mailerFunc(func(_ context.Context, _, _, text, _ string) error { last = text; return nil })
	for _, tt := range []struct {
		after time.Duration
		ok    bool
	}{{168*time.Hour - time.Second, true}, {168*time.Hour + time.Second, false}} {
		svc := setup.New(store(), mailer, secrets{}, setup.Config{PortalURL: "https://portal.example.com", Brand: "turnover", LinkTTL: 168 * time.Hour})
		issued := time.Now()
		svc.Now = func() time.Time { return issued }
		if _, err := svc.Invite(context.Background(), setup.Invitation{Domain: domain, Extension: "1006", Email: "zoe@example.com", Purpose: turnover.LinkWelcome, Scope: tt.after.String()}); err != nil {
			t.Fatal(err)
		}
		link, _ := url.Parse(linkPattern.FindString(last))
		svc.Now = func() time.Time { return issued.Add(tt.after) }
		err := svc.Complete(context.Background(), setup.Completion{Username: link.Query().Get("username"), Token: link.Query().Get("auth_code"), Password: "tangerine-sofa-42", PIN: "2580"})
		if (err == nil) != tt.ok {
			t.Errorf("after %v: %v, want ok=%v", tt.after, err, tt.ok)
		}
	}
}

type mailerFunc func(ctx context.Context, to, subject, text, html string) error

func (f mailerFunc) Send(ctx context.Context, to, subject, text, html string) error {
	return f(ctx, to, subject, text, html)
}

type secrets struct{}

func (secrets) CheckPassword(pw string) error        { return secret.CheckPassword(pw) }
func (secrets) CheckPIN(pin, extension string) error { return secret.CheckPIN(pin, extension) }
func (secrets) Hash(s string) (string, error)        { return secret.Hash(s) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRecyclingAgainKillsOlderLinks(t *testing.T) {
	domain := freshDomain(t, "again")
	tok := tokenFor(t, domain)
	var res struct {
		Results []struct{ Extension, Status, Email string }
	}
	// 1006 (Zoe Washburne) waits for setup in the demo domain.
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "send_welcome_email", "users": []string{"1006"}}, &res); status != 200 || res.Results[0].Email != "queued" {
		t.Fatalf("send welcome: %d %+v", status, res)
	}
	_, link := mailTo(t, "zoe.washburne@"+domain+".example")
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/recycles", map[string]any{"rows": []any{
		map[string]any{"extension": "1006", "firstName": "Inara", "lastName": "Serra", "email": "inara@example.com"},
	}}, &res); status != 200 || res.Results[0].Status != "recycled" {
		t.Fatalf("recycle: %d %+v", status, res)
	}
	if status, _ := complete(t, link, "tangerine-sofa-42", "2580"); status != 400 {
		t.Errorf("the link sent before the recycle still works: %d", status)
	}
	var dir struct {
		Entries []struct{ Extension, FirstName string }
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/directory?digits="+turnover.KeypadDigits("Serra"), nil, &dir)
	if len(dir.Entries) != 2 { // the demo's Inara at 1000, and 1006 now
		t.Errorf("directory at Serra = %+v", dir.Entries)
	}
}

// The mail markers' conditions on the real table: a lease keeps a mail for its sender
// until it runs out or is released; "sent" keeps it for good; a release ends only the
// lease it names and never a "sent" marker.
func TestMailMarkersOnTheRealStore(t *testing.T) {
	ctx := context.Background()
	s := store()
	domain := freshDomain(t, "markers")
	now := time.Now().Truncate(time.Second)
	lease := now.Add(2 * time.Minute)
	claim := func(scope string, at, until time.Time) (bool, error) {
		return s.ClaimMailMarker(ctx, domain, scope, "1006", at, until)
	}
	step := func(what string, claimed bool, err error, wantClaimed, wantErr bool) {
		t.Helper()
		if claimed != wantClaimed || (err != nil) != wantErr {
			t.Errorf("%s: claimed %v, err %v; want claimed %v, an error %v", what, claimed, err, wantClaimed, wantErr)
		}
	}
	c, err := claim("lapse", now, lease)
	step("first claim", c, err, true, false)
	c, err = claim("lapse", now.Add(time.Minute), now.Add(3*time.Minute))
	step("a claim while the lease runs", c, err, false, true)
	if err := s.ReleaseMailMarker(ctx, domain, "lapse", "1006", lease.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err = claim("lapse", now.Add(time.Minute), now.Add(3*time.Minute))
	step("a claim after releasing another lease", c, err, false, true)
	c, err = claim("lapse", lease, lease.Add(2*time.Minute))
	step("a claim once the lease ran out", c, err, true, false)

	c, err = claim("release", now, lease)
	step("first claim", c, err, true, false)
	if err := s.ReleaseMailMarker(ctx, domain, "release", "1006", lease); err != nil {
		t.Fatal(err)
	}
	c, err = claim("release", now, lease)
	step("a claim after the release", c, err, true, false)

	if err := s.MarkMailSent(ctx, domain, "release", "1006", now.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseMailMarker(ctx, domain, "release", "1006", lease); err != nil {
		t.Fatal(err)
	}
	c, err = claim("release", now.Add(24*time.Hour), now.Add(24*time.Hour+2*time.Minute))
	step("a claim of a sent mail, after a late release", c, err, false, false)
}

// inviteDirect issues a link through the setup service on the real table, bypassing the
// mail queue, and returns it.
func inviteDirect(t *testing.T, domain, ext string, purpose turnover.LinkPurpose) *url.URL {
	t.Helper()
	var last string
	mailer := mailerFunc(func(_ context.Context, _, _, text, _ string) error { last = text; return nil })
	svc := setup.New(store(), mailer, secrets{}, setup.Config{PortalURL: stack.APIURL, Brand: "turnover", LinkTTL: time.Hour})
	if _, err := svc.Invite(context.Background(), setup.Invitation{Domain: domain, Extension: ext, Email: "x@example.com", Purpose: purpose, Scope: rand.Text()}); err != nil {
		t.Fatal(err)
	}
	link, err := url.Parse(linkPattern.FindString(last))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

func withToken(link *url.URL, token string) *url.URL {
	l := *link
	q := l.Query()
	q.Set("auth_code", token)
	l.RawQuery = q.Encode()
	return &l
}

// Failed attempts are limited atomically, on the setup page as in the setup: of many bad
// attempts at once, no more than the limit (10) are checked, and after them even the
// good token is refused; the refusal is the same for an unknown user.
func TestSetupAttemptsAreLimited(t *testing.T) {
	domain := freshDomain(t, "attempts")
	tok := tokenFor(t, domain)
	bad := strings.Repeat("B", 43)

	link := inviteDirect(t, domain, "1006", turnover.LinkWelcome)
	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Go(func() { statuses[i], _ = complete(t, withToken(link, bad), "tangerine-sofa-42", "2580") })
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[400] != 10 || count[429] != 20 {
		t.Errorf("30 bad setups at once: %v, want 10 checked (400) and 20 refused unchecked (429)", count)
	}
	status, limited := complete(t, link, "tangerine-sofa-42", "2580")
	if status != 429 {
		t.Errorf("the good token after them: %d %s, want 429", status, limited)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1006", nil, &u)
	if u.Status != "setup_required" {
		t.Errorf("1006 = %s after the limit, want setup_required", u.Status)
	}

	// The page counts as the setup does.
	page := inviteDirect(t, domain, "1005", turnover.LinkWelcome)
	for range 10 {
		if status, _, _ := openPage(t, withToken(page, bad)); status != 400 {
			t.Fatalf("the page with a bad token: %d, want 400", status)
		}
	}
	if status, body, _ := openPage(t, page); status != 429 || strings.Contains(body, "<form") {
		t.Errorf("the page with the good token after 10 bad ones: %d, want 429 and no form", status)
	}
	if status, _ := complete(t, page, "tangerine-sofa-42", "2580"); status != 429 {
		t.Errorf("setup after 10 bad page openings: %d, want 429", status)
	}

	// An unknown user is refused alike.
	unknown := *link
	q := unknown.Query()
	q.Set("username", setup.Username("1099", domain))
	unknown.RawQuery = q.Encode()
	var unknownStatus int
	var unknownBody string
	for range 11 {
		unknownStatus, unknownBody = complete(t, &unknown, "tangerine-sofa-42", "2580")
	}
	if unknownStatus != status || unknownBody != limited {
		t.Errorf("an unknown user past the limit: %d %s; want %d %s as for a known one", unknownStatus, unknownBody, status, limited)
	}
}

// force_password_reset of a user who has not finished setup: the older link dies, the
// user becomes password_required as any forced reset makes them, and the mail asked
// for is a welcome link that needs a PIN; a recovery link of such a user, however made,
// does not work.
func TestForcePasswordResetOfAUserWaitingForSetup(t *testing.T) {
	domain := freshDomain(t, "forced")
	tok := tokenFor(t, domain)
	var res struct {
		Results []struct{ Extension, Status, Email string }
	}
	// 1006 (Zoe Washburne) waits for setup in the demo domain.
	older := inviteDirect(t, domain, "1006", turnover.LinkWelcome)
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "force_password_reset", "users": []string{"1006"}}, &res); status != 200 || res.Results[0].Status != "done" || res.Results[0].Email != "not_requested" {
		t.Fatalf("force password reset: %d %+v", status, res)
	}
	if status, _ := complete(t, older, "tangerine-sofa-42", "2580"); status != 400 {
		t.Errorf("a link sent before the forced reset still works: %d", status)
	}
	// A recovery link of a user without a PIN, as an older version could send: refused.
	recovery := inviteDirect(t, domain, "1006", turnover.LinkRecovery)
	if status, _ := complete(t, recovery, "tangerine-sofa-42", ""); status != 400 {
		t.Errorf("a recovery link of 1006, who has no PIN: %d, want 400", status)
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/bulk-actions", map[string]any{"action": "force_password_reset", "users": []string{"1006"}, "sendRecoveryEmail": true}, &res); status != 200 || res.Results[0].Status != "done" || res.Results[0].Email != "queued_welcome" {
		t.Fatalf("force password reset with mail: %d %+v", status, res)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1006", nil, &u)
	if u.Status != "password_required" {
		t.Errorf("1006 after a forced reset = %s, want password_required", u.Status)
	}
	m, link := mailTo(t, "zoe.washburne@"+domain+".example")
	if !strings.HasPrefix(m.Subject, "Welcome") {
		t.Errorf("subject %q, want a welcome mail", m.Subject)
	}
	if status, page, _ := openPage(t, link); status != 200 || !strings.Contains(page, `name="voicemail_pin"`) {
		t.Errorf("the mailed link's page: %d, asks for a PIN: %v", status, strings.Contains(page, `name="voicemail_pin"`))
	}
	if status, _ := complete(t, link, "tangerine-sofa-42", ""); status != 400 {
		t.Errorf("setup without a PIN: %d, want 400", status)
	}
	if status, body := complete(t, link, "tangerine-sofa-42", "2580"); status != 200 {
		t.Fatalf("setup: %d %s", status, body)
	}
	data, _, err := store().LoadUserData(context.Background(), domain, "1006")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := secret.Verify("2580", data.User.VoicemailPINHash); !ok || data.User.Status != turnover.StatusActive {
		t.Errorf("1006 after setup: %s, PIN set %v", data.User.Status, ok)
	}

}
