package api_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"turnover/internal/api"
	"turnover/internal/setup"
	"turnover/internal/turnover"
)

// The fake also stands in for the accounts and offboardings stores, the setup-link
// store, the mail queue and the mailer, with the conditions of the real ones that
// decide an answer: a user in one pending offboarding at a time, only a scheduled
// offboarding changes, only a reset extension is recycled.
var (
	_ api.Accounts     = (*fake)(nil)
	_ api.Offboardings = (*fake)(nil)
	_ api.Mail         = (*fake)(nil)
	_ setup.Store      = (*fake)(nil)
	_ setup.Mailer     = (*fake)(nil)
)

// ListPhones answers niftywidgets' desk phones: one with two users' lines, and one
// whose only user's line was removed, which the real store answers with no lines.
func (f *fake) ListPhones(_ context.Context, domain string) ([]turnover.Phone, error) {
	if err := f.touch(); err != nil {
		return nil, err
	}
	if domain != "niftywidgets" {
		return nil, nil
	}
	return []turnover.Phone{
		{MAC: "00:04:f2:00:10:02", Model: "Poly VVX 450", Label: "Desk 1002"},
		{MAC: "00:04:f2:00:20:01", Model: "Poly Trio 8800", Label: "Operations conference room", Lines: []string{"1001", "1006"}},
	}, nil
}

func (f *fake) SetIdentity(_ context.Context, domain string, id turnover.NewIdentity) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.users[domain+"/"+id.Extension]; !ok || u.Status != turnover.StatusSetupRequired {
		return turnover.Errorf(turnover.ECONFLICT, "Extension %s has not been reset; reset it before recycling it.", id.Extension)
	}
	f.identities[domain+"/"+id.Extension] = id
	return nil
}

// ForcePasswordReset makes the user password_required, as the store does, voids the
// user's link and says whether the user has a PIN.
func (f *fake) ForcePasswordReset(_ context.Context, domain, ext string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[domain+"/"+ext]
	if !ok {
		return false, turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist in domain %s.", ext, domain)
	}
	f.forced = append(f.forced, domain+"/"+ext)
	delete(f.links, domain+"/"+ext)
	u.Status, u.PasswordHash = turnover.StatusPasswordRequired, ""
	f.users[domain+"/"+ext] = u
	return u.VoicemailPINHash != "", nil
}

func (f *fake) CreateOffboarding(_ context.Context, o turnover.Offboarding) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.offboardings[o.Domain+"/"+o.ID]; ok {
		return turnover.Errorf(turnover.ECONFLICT, "Offboarding %s exists already.", o.ID)
	}
	for _, ext := range o.Users {
		_, ok := f.users[o.Domain+"/"+ext]
		busy := slices.ContainsFunc(slices.Collect(maps.Values(f.offboardings)), func(p turnover.Offboarding) bool {
			return p.Domain == o.Domain && p.Status == turnover.OffboardingScheduled && slices.Contains(p.Users, ext)
		})
		if !ok || busy {
			return turnover.Errorf(turnover.EUNPROCESSABLE, "Extension %s does not exist or is in another pending offboarding; cancel that one first.", ext)
		}
	}
	f.offboardings[o.Domain+"/"+o.ID] = o
	return nil
}

func (f *fake) GetOffboarding(_ context.Context, domain, id string) (turnover.Offboarding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.offboardings[domain+"/"+id]
	if !ok {
		return o, turnover.Errorf(turnover.ENOTFOUND, "There is no offboarding %s in domain %s.", id, domain)
	}
	return o, nil
}

func (f *fake) ListOffboardings(_ context.Context, domain string) ([]turnover.Offboarding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []turnover.Offboarding
	for _, o := range f.offboardings {
		if o.Domain == domain {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b turnover.Offboarding) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// changeScheduled changes an offboarding that is still scheduled, as the store's
// condition does.
func (f *fake) changeScheduled(o turnover.Offboarding, change func(*turnover.Offboarding)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.offboardings[o.Domain+"/"+o.ID]
	if !ok || cur.Status != turnover.OffboardingScheduled {
		return turnover.Errorf(turnover.ECONFLICT, "Offboarding %s has started or was cancelled; it can no longer change.", o.ID)
	}
	change(&cur)
	f.offboardings[o.Domain+"/"+o.ID] = cur
	return nil
}

func (f *fake) CancelOffboarding(_ context.Context, o turnover.Offboarding) error {
	return f.changeScheduled(o, func(o *turnover.Offboarding) { o.Status = turnover.OffboardingCancelled })
}

func (f *fake) RescheduleOffboarding(_ context.Context, o turnover.Offboarding, at time.Time) error {
	return f.changeScheduled(o, func(o *turnover.Offboarding) { o.At = at })
}

func (f *fake) PutSetupLink(_ context.Context, domain, ext string, l turnover.SetupLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[domain+"/"+ext] = l
	return nil
}

func (f *fake) GetSetupLink(_ context.Context, domain, ext string) (*turnover.SetupLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[domain+"/"+ext]; ok {
		return &l, nil
	}
	return nil, nil
}

func (f *fake) RedeemSetupLink(_ context.Context, domain, ext, hash string, now time.Time, pw, pin string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[domain+"/"+ext]
	if !ok || l.TokenHash != hash || !now.Before(l.ValidUntil) {
		return false, nil
	}
	delete(f.links, domain+"/"+ext)
	f.active[domain+"/"+ext] = [2]string{pw, pin}
	return true, nil
}

func (f *fake) AddSetupAttempts(_ context.Context, username string, _ time.Time, _ time.Duration, n int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[username] += n
	if f.failures[username] == 0 {
		delete(f.failures, username)
	}
	return f.failures[username], nil
}

func (f *fake) ClaimMailMarker(_ context.Context, domain, scope, ext string, _, _ time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := domain + "/" + scope + "/" + ext
	if f.markers[k] {
		return false, nil
	}
	f.markers[k] = true
	return true, nil
}

func (f *fake) MarkMailSent(context.Context, string, string, string, time.Time) error { return nil }

func (f *fake) ReleaseMailMarker(_ context.Context, domain, scope, ext string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.markers, domain+"/"+scope+"/"+ext)
	return nil
}

func (f *fake) Request(_ context.Context, reqs []turnover.MailRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mail = append(f.mail, reqs...)
	return nil
}

// Send is the setup service's mailer; no route under test mails directly.
func (f *fake) Send(context.Context, string, string, string, string) error {
	return errors.New("mail goes through the queue")
}

// writes is everything the fake has been asked to store, sent or started, as one
// comparable string. Failed setup attempts are left out: recording them is how a
// refused setup is rate-limited, so a refusal may add one.
func (f *fake) writes() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(map[string]any{
		"jobs": f.jobs, "manifests": f.manifests, "recycle": f.recycle, "executions": f.executions,
		"idempotency": f.idem, "identities": f.identities, "forced": f.forced,
		"offboardings": f.offboardings, "links": f.links, "active": f.active,
		"markers": f.markers, "mail": f.mail,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}
