package config_test

import (
	"strings"
	"testing"

	"turnover/internal/config"
)

// env is a Lookup over a map.
func env(m map[string]string) config.Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// mailerEnv is what template.yaml gives the mailer, with the rate settings overridden
// (an empty value drops the variable).
func mailerEnv(rate, concurrency string) map[string]string {
	m := map[string]string{
		"TABLE_NAME":       "turnover-table",
		"SENDER_EMAIL":     "noreply@turnover.localhost",
		"PORTAL_URL":       "https://portal.example.com",
		"MAIL_RATE":        rate,
		"MAIL_CONCURRENCY": concurrency,
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// Each mailer instance sends its share of the account's rate, so that the instances
// the queue runs at once never send faster than SES allows together.
func TestLoadMailerSharesTheRate(t *testing.T) {
	for _, tc := range []struct {
		name              string
		rate, concurrency string
		wantAccount       int
		wantConcurrency   int
		wantRate          float64
	}{
		{"template defaults", "14", "2", 14, 2, 7},
		{"odd rate keeps the fraction", "15", "2", 15, 2, 7.5},
		{"sandbox rate of 1", "1", "2", 1, 2, 0.5},
		{"more instances", "14", "5", 14, 5, 2.8},
		{"one instance sends the whole rate", "14", "1", 14, 1, 14},
		{"MAIL_RATE unset takes its default", "", "2", 14, 2, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.LoadMailer(env(mailerEnv(tc.rate, tc.concurrency)))
			if err != nil {
				t.Fatal(err)
			}
			if c.AccountRate != tc.wantAccount || c.Concurrency != tc.wantConcurrency || c.Rate != tc.wantRate {
				t.Errorf("AccountRate %d, Concurrency %d, Rate %v; want %d, %d, %v",
					c.AccountRate, c.Concurrency, c.Rate, tc.wantAccount, tc.wantConcurrency, tc.wantRate)
			}
			if total := c.Rate * float64(c.Concurrency); total > float64(c.AccountRate) {
				t.Errorf("%d instances at %v a second send %v a second, over the account's %d", c.Concurrency, c.Rate, total, c.AccountRate)
			}
		})
	}
}

func TestLoadMailerRefusesBadConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name, rate, concurrency, want string
	}{
		// Guessing would put more instances than it assumes over the account's rate.
		{"unset", "14", "", "MAIL_CONCURRENCY is not set"},
		{"zero", "14", "0", "MAIL_CONCURRENCY must be a whole number from 1"},
		{"not a number", "14", "two", "MAIL_CONCURRENCY must be a whole number from 1"},
		{"bad rate too", "0", "x", "MAIL_RATE must be a whole number from 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.LoadMailer(env(mailerEnv(tc.rate, tc.concurrency)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if c.Rate != 0 {
				t.Errorf("Rate %v with a bad setting, want 0", c.Rate)
			}
		})
	}
}
