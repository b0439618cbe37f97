package api

import (
	"strings"
	"testing"
)

// only reports whether s is min to max bytes, each in set.
func only(s string, min, max int, set string) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(set, rune(s[i])) {
			return false
		}
	}
	return true
}

const (
	digits  = "0123456789"
	lowers  = "abcdefghijklmnopqrstuvwxyz"
	keypad  = "23456789"
	visible = "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
)

// FuzzPatterns holds the API's checks of extensions, domains, job ids, directory digits
// and Idempotency-Keys to what they are documented to accept, spelled out byte by
// byte, so that no regular expression lets a line break, a Unicode digit or one
// character too many through.
func FuzzPatterns(f *testing.F) {
	for _, s := range []string{"1009", "1", "12345678901", "1009\n", "١٠٠٩", "niftywidgets", "-nifty", "nifty-", "a", "job1", "739", "0", "key-1", "with space", "ключ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validExtension(s), only(s, 2, 10, digits); got != want {
			t.Errorf("validExtension(%q) = %v, want %v", s, got, want)
		}
		domainOK := only(s, 1, 63, lowers+digits+".-") && strings.ContainsRune(lowers+digits, rune(s[0])) && strings.ContainsRune(lowers+digits, rune(s[len(s)-1]))
		if got := validDomain(s); got != domainOK {
			t.Errorf("validDomain(%q) = %v, want %v", s, got, domainOK)
		}
		if got, want := jobIDPattern.MatchString(s), only(s, 1, 64, lowers+digits+"-"); got != want {
			t.Errorf("job id %q matches: %v, want %v", s, got, want)
		}
		if got, want := digitsPattern.MatchString(s), only(s, 1, 32, keypad); got != want {
			t.Errorf("digits %q match: %v, want %v", s, got, want)
		}
		if got, want := checkIdempotencyKey(s) == nil, only(s, 1, maxIdempotencyKey, visible); got != want {
			t.Errorf("checkIdempotencyKey(%q) accepts: %v, want %v", s, got, want)
		}
	})
}

// FuzzCursor: a cursor of a job's pages decodes to an offset that is never negative,
// and every offset the API hands out comes back as itself.
func FuzzCursor(f *testing.F) {
	f.Add("", 0)
	f.Add(encodeOffset(1000), 1000)
	f.Add("dXNlcnM6LTE", 5)                        // users:-1
	f.Add("dXNlcnM6OTIyMzM3MjAzNjg1NDc3NTgwNw", 7) // users:9223372036854775807
	f.Fuzz(func(t *testing.T, cursor string, n int) {
		if off, err := decodeOffset(cursor); err == nil && off < 0 {
			t.Errorf("cursor %q decodes to %d", cursor, off)
		}
		if n < 0 {
			return
		}
		if got, err := decodeOffset(encodeOffset(n)); err != nil || got != n {
			t.Errorf("offset %d comes back as %d, %v", n, got, err)
		}
		users := []string{"1001", "1002", "1003"}
		for _, limit := range []int{1, maxResultsPage} {
			if p := pageOf(users, n, limit); len(p) > limit || (n < len(users) && len(p) == 0) {
				t.Errorf("pageOf(%d users, %d, %d) = %v", len(users), n, limit, p)
			}
		}
	})
}
