// Package config reads each function's settings from its environment, once, at start.
//
// Nothing else in turnover reads the environment: functions are built from these typed
// values, so the local stack can run every function in one process, each with the
// environment template.yaml gives it.
package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Lookup finds one setting, like os.LookupEnv.
type Lookup func(key string) (string, bool)

// Common holds what every function needs.
type Common struct {
	TableName string
}

// Mail configures setup links and the mail that carries them.
type Mail struct {
	// SenderEmail is the verified SES identity mail comes from.
	SenderEmail string
	// PortalURL is the portal's base URL; setup links point at its /portal/resets page.
	PortalURL string
	// BrandName signs the mail.
	BrandName string
	// LinkTTL is how long a setup link stays valid.
	LinkTTL time.Duration
}

// API configures the portal's HTTP API function.
type API struct {
	Common
	BucketName      string
	StateMachineARN string
	BatchSize       int
	// MailQueueURL is the queue welcome and recovery mail waits in.
	MailQueueURL string
}

// Reset configures the function that resets one batch of a job.
type Reset struct {
	Common
	BucketName string
	// MailQueueURL is the queue welcome mail waits in.
	MailQueueURL string
}

// Mailer configures the function that sends queued mail.
type Mailer struct {
	Common
	Mail
	// AccountRate is how many emails a second all mailer instances together send at
	// most: the SES account's quota (MAIL_RATE).
	AccountRate int
	// Concurrency is how many mailer instances run at once (MAIL_CONCURRENCY): the mail
	// queue's MaximumConcurrency.
	Concurrency int
	// Rate is how many emails a second this instance sends at most: its share of
	// AccountRate, so that Concurrency instances together stay within the quota.
	Rate float64
}

// Finalize configures the function that closes a job.
type Finalize struct {
	Common
	// EventBusName is the EventBridge bus finished jobs are announced on.
	EventBusName string
}

// LoadAPI reads the API function's settings. It fails naming every missing or bad one.
func LoadAPI(lookup Lookup) (API, error) {
	r := reader{lookup: lookup}
	c := API{
		Common:          r.common(),
		BucketName:      r.required("BUCKET_NAME"),
		StateMachineARN: r.required("STATE_MACHINE_ARN"),
		BatchSize:       r.intBetween("BATCH_SIZE", 25, 1, 500),
		MailQueueURL:    r.required("MAIL_QUEUE_URL"),
	}
	return c, r.err()
}

// Offboard configures the function that starts due offboardings.
type Offboard struct {
	Common
	BucketName      string
	StateMachineARN string
	BatchSize       int
}

// LoadOffboard reads the offboard function's settings. It fails naming every missing or
// bad one.
func LoadOffboard(lookup Lookup) (Offboard, error) {
	r := reader{lookup: lookup}
	c := Offboard{
		Common:          r.common(),
		BucketName:      r.required("BUCKET_NAME"),
		StateMachineARN: r.required("STATE_MACHINE_ARN"),
		BatchSize:       r.intBetween("BATCH_SIZE", 25, 1, 500),
	}
	return c, r.err()
}

// LoadReset reads the reset function's settings. It fails naming every missing or bad one.
func LoadReset(lookup Lookup) (Reset, error) {
	r := reader{lookup: lookup}
	c := Reset{Common: r.common(), BucketName: r.required("BUCKET_NAME"), MailQueueURL: r.required("MAIL_QUEUE_URL")}
	return c, r.err()
}

// LoadMailer reads the mailer function's settings. MAIL_CONCURRENCY has no default: a
// guess below the real number of instances would take them over the account's rate.
// It fails naming every missing or bad one.
func LoadMailer(lookup Lookup) (Mailer, error) {
	r := reader{lookup: lookup}
	c := Mailer{
		Common:      r.common(),
		Mail:        r.mail(),
		AccountRate: r.intBetween("MAIL_RATE", 14, 1, 1000),
	}
	if r.required("MAIL_CONCURRENCY") != "" {
		c.Concurrency = r.intBetween("MAIL_CONCURRENCY", 0, 1, 1000)
	}
	if c.Concurrency > 0 {
		c.Rate = float64(c.AccountRate) / float64(c.Concurrency)
	}
	return c, r.err()
}

// LoadFinalize reads the finalize function's settings. It fails naming every missing or bad one.
func LoadFinalize(lookup Lookup) (Finalize, error) {
	r := reader{lookup: lookup}
	c := Finalize{Common: r.common(), EventBusName: r.required("EVENT_BUS_NAME")}
	return c, r.err()
}

// reader collects problems so that one start-up failure names all of them.
type reader struct {
	lookup   Lookup
	problems []string
}

func (r *reader) common() Common {
	return Common{TableName: r.required("TABLE_NAME")}
}

func (r *reader) mail() Mail {
	m := Mail{
		SenderEmail: r.required("SENDER_EMAIL"),
		PortalURL:   r.required("PORTAL_URL"),
		BrandName:   r.optional("BRAND_NAME", "turnover"),
		LinkTTL:     time.Duration(r.intBetween("SETUP_LINK_HOURS", 168, 1, 24*30)) * time.Hour,
	}
	if u, err := url.Parse(m.PortalURL); m.PortalURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		r.problems = append(r.problems, fmt.Sprintf("PORTAL_URL must be an http(s) URL, not %q", m.PortalURL))
	}
	return m
}

func (r *reader) optional(key, def string) string {
	if v, ok := r.lookup(key); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) required(key string) string {
	v, ok := r.lookup(key)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		r.problems = append(r.problems, key+" is not set")
	}
	return v
}

func (r *reader) intBetween(key string, def, min, max int) int {
	v, ok := r.lookup(key)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min || n > max {
		r.problems = append(r.problems, fmt.Sprintf("%s must be a whole number from %d to %d, not %q", key, min, max, v))
		return def
	}
	return n
}

func (r *reader) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %s", strings.Join(r.problems, "; "))
}
