package turnover_test

import (
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"turnover/internal/turnover"
)

// FuzzValidEmail: an address ValidEmail accepts is one bare address, short enough for
// SMTP, that parses back as itself and can go into a mail header as it is: text with no
// space, control character, quote or angle bracket, one @ and a dot after it.
func FuzzValidEmail(f *testing.F) {
	for _, s := range []string{"ann.lee@example.com", "Ann <ann@example.com>", "ann@localhost", `"ann lee"@example.com`, "ann@example.com\r\nBcc: x@example.com", "ann@[192.0.2.1]", "a@b.c", "ann@ex\x00ample.com", "ánn@exämple.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !turnover.ValidEmail(s) {
			return
		}
		a, err := mail.ParseAddress(s)
		switch {
		case err != nil || a.Address != s || a.Name != "":
			t.Errorf("ValidEmail(%q), yet it parses as %v, %v", s, a, err)
		case len(s) > 254 || !utf8.ValidString(s):
			t.Errorf("ValidEmail(%q): %d bytes, UTF-8 %v", s, len(s), utf8.ValidString(s))
		case strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.IsSpace(r) || strings.ContainsRune(`"<>,;`, r)
		}):
			t.Errorf("ValidEmail(%q) lets a space, control character, quote, bracket or separator through", s)
		case strings.Count(s, "@") != 1 || !strings.Contains(s[strings.Index(s, "@"):], "."):
			t.Errorf("ValidEmail(%q) accepts an address without one @ and a dot after it", s)
		}
	})
}

// FuzzNewIdentityValidate: a new identity Validate accepts has names of 1 to 64
// characters of text without surrounding spaces or control characters, and an address
// ValidEmail accepts; a refusal is an EINVALID error.
func FuzzNewIdentityValidate(f *testing.F) {
	f.Add("Ann", "Lee", "ann.lee@example.com", "Sales")
	f.Add(" Ann", "Lee", "ann.lee@example.com", "")
	f.Add("Ann", "", "ann.lee@example.com", "")
	f.Add("Ann\x00", "Lee", "ann.lee@example.com", "")
	f.Add("Ann", "Lee\xff", "ann.lee@example.com", "=cmd|' /C calc'!A0")
	f.Add(strings.Repeat("é", 64), strings.Repeat("x", 65), "ann.lee@example.com", "")
	f.Fuzz(func(t *testing.T, first, last, email, department string) {
		id := turnover.NewIdentity{Extension: "1009", FirstName: first, LastName: last, Email: email, Department: department}
		err := id.Validate()
		if err != nil {
			if turnover.ErrorCode(err) != turnover.EINVALID {
				t.Errorf("Validate(%+v) = %v, want an EINVALID error", id, err)
			}
			return
		}
		for _, v := range []string{first, last, department} {
			n := utf8.RuneCountInString(v)
			if !utf8.ValidString(v) || n > 64 || v != strings.TrimSpace(v) || strings.ContainsFunc(v, unicode.IsControl) {
				t.Errorf("Validate accepts the name or department %q", v)
			}
		}
		if strings.TrimSpace(first) == "" || strings.TrimSpace(last) == "" || !turnover.ValidEmail(email) {
			t.Errorf("Validate accepts %+v", id)
		}
	})
}

// FuzzKeypadDigits: a name spells as keypad digits 2 to 9 only, at most one a letter,
// and the directory key of a name is its last name's digits, then its first name's.
func FuzzKeypadDigits(f *testing.F) {
	for _, s := range []string{"Reynolds", "O'Brien-Smith", "ÿ 42", "straße", "ǅemal", "\xff\xfe", "Ｒｅｙ"} {
		f.Add(s, "Mal")
	}
	f.Fuzz(func(t *testing.T, last, first string) {
		d := turnover.KeypadDigits(last)
		if strings.Trim(d, "23456789") != "" || len(d) > utf8.RuneCountInString(last) {
			t.Errorf("KeypadDigits(%q) = %q", last, d)
		}
		if got, want := turnover.DirectoryDigits(first, last), d+turnover.KeypadDigits(first); got != want {
			t.Errorf("DirectoryDigits(%q, %q) = %q, want %q", first, last, got, want)
		}
	})
}
