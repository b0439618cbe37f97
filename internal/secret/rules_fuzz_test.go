package secret_test

import (
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"turnover/internal/secret"
	"turnover/internal/turnover"
)

// refusals collects the messages check gives for inputs, which must all differ: the
// fixed set a refusal of any other input must come from, so no message can carry what
// the person typed.
func refusals(tb testing.TB, check func(string) error, inputs ...string) map[string]bool {
	tb.Helper()
	m := map[string]bool{}
	for _, s := range inputs {
		err := check(s)
		if err == nil {
			tb.Fatalf("%q is not refused", s)
		}
		m[turnover.ErrorMessage(err)] = true
	}
	if len(m) != len(inputs) {
		tb.Fatalf("%d inputs gave only %d messages", len(inputs), len(m))
	}
	return m
}

// FuzzCheckPassword: a password CheckPassword accepts is 8 to 128 characters of text,
// not only spaces, without control characters, not one character repeated and not on
// the list of common passwords in any case; a refusal is an EINVALID error with one of
// the rules' fixed messages.
func FuzzCheckPassword(f *testing.F) {
	raw, err := os.ReadFile("common-passwords.txt")
	if err != nil {
		f.Fatal(err)
	}
	common := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		common[strings.TrimSpace(l)] = true
	}
	messages := refusals(f, secret.CheckPassword,
		"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "short", strings.Repeat("x", 130), strings.Repeat(" ", 9),
		"abcdefg\th", "aaaaaaaa", "password")
	for _, s := range []string{"correct horse battery staple", "PassWord", " password ", "Tr0ub4dor&3", "пароль!9пароль", "\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0", "abc\u0085defgh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		err := secret.CheckPassword(pw)
		if err != nil {
			if turnover.ErrorCode(err) != turnover.EINVALID || !messages[turnover.ErrorMessage(err)] {
				t.Errorf("CheckPassword(%q) = %v, want an EINVALID error with one of the fixed messages", pw, err)
			}
			return
		}
		n := utf8.RuneCountInString(pw)
		first, _ := utf8.DecodeRuneInString(pw)
		switch {
		case !utf8.ValidString(pw) || n < 8 || n > 128:
			t.Errorf("CheckPassword accepts %q: %d characters, UTF-8 %v", pw, n, utf8.ValidString(pw))
		case strings.TrimSpace(pw) == "" || strings.ContainsFunc(pw, unicode.IsControl):
			t.Errorf("CheckPassword accepts %q: only spaces, or control characters", pw)
		case strings.Count(pw, string(first)) == n:
			t.Errorf("CheckPassword accepts %q: one character repeated", pw)
		case common[strings.ToLower(strings.TrimSpace(pw))]:
			t.Errorf("CheckPassword accepts %q: a common password", pw)
		}
	})
}

// FuzzCheckPIN: a PIN CheckPIN accepts is 4 to 10 ASCII digits, not one digit
// repeated, not a run up or down and not the extension; a refusal is an EINVALID error
// with one of the rules' fixed messages.
func FuzzCheckPIN(f *testing.F) {
	messages := refusals(f, func(pin string) error { return secret.CheckPIN(pin, "1009") },
		"12a4", "123", "1111", "1234", "1009")
	for _, s := range []string{"2580", "7890", "9876", "١٢٣٤", "+1234", "02468", "1009", "00000000000", ""} {
		f.Add(s, "1009")
	}
	f.Fuzz(func(t *testing.T, pin, ext string) {
		err := secret.CheckPIN(pin, ext)
		if err != nil {
			if turnover.ErrorCode(err) != turnover.EINVALID || !messages[turnover.ErrorMessage(err)] {
				t.Errorf("CheckPIN(%q, %q) = %v, want an EINVALID error with one of the fixed messages", pin, ext, err)
			}
			return
		}
		if len(pin) < 4 || len(pin) > 10 || strings.Trim(pin, "0123456789") != "" {
			t.Fatalf("CheckPIN accepts %q: not 4 to 10 digits", pin)
		}
		up, down, same := true, true, true
		for i := 1; i < len(pin); i++ {
			up = up && pin[i] == pin[i-1]+1
			down = down && pin[i] == pin[i-1]-1
			same = same && pin[i] == pin[0]
		}
		if up || down || same || pin == ext {
			t.Errorf("CheckPIN(%q, %q) accepts a run, a repeated digit or the extension", pin, ext)
		}
	})
}
