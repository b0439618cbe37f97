package secret_test

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"turnover/internal/secret"
	"turnover/internal/turnover"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name string
		pw   string
		ok   bool
	}{
		{"8 characters", "Tr0ub4dx", true},
		{"7 characters", "Tr0ub4d", false},
		{"empty", "", false},
		{"passphrase with spaces", "correct horse battery staple", true},
		{"leading and trailing spaces", "  Tr0ub4dor&3  ", true},
		{"64 characters", strings.Repeat("abcdefgh", 8), true},
		{"128 characters", strings.Repeat("abcdefgh", 16), true},
		{"129 characters", strings.Repeat("abcdefgh", 16) + "x", false},
		{"8 multibyte characters, 16 bytes", "пароль!9", true},
		{"7 multibyte characters, 13 bytes", "пароль9", false},
		{"128 multibyte characters", strings.Repeat("日本語のパスワ", 18) + "ード", true},
		{"129 multibyte characters", strings.Repeat("日本語のパスワ", 18) + "ードだ", false},
		{"emoji", "🔑🚪🏠🐈🌧☂🎹🎲", true},
		{"only spaces", strings.Repeat(" ", 12), false},
		{"only mixed whitespace", " \u00a0 \u2003    ", false},
		{"tab", "abc\tdefgh", false},
		{"line break", "abcdefgh\n", false},
		{"NUL", "abcd\x00efgh", false},
		{"DEL", "abcd\x7fefgh", false},
		{"invalid UTF-8", "abcdefg\xff", false},
		{"one letter repeated", "zzzzzzzzzz", false},
		{"one multibyte letter repeated", "ééééééééé", false},
		{"one symbol repeated", "############", false},
		{"two letters repeated", "zyzyzyzyzy", true},
		{"common", "password", false},
		{"common, upper case", "PASSWORD1", false},
		{"common, mixed case", "QwErTy123", false},
		{"common, digits", "12345678", false},
		{"common, keyboard walk", "1q2w3e4r", false},
		{"common, padded with spaces", " iloveyou ", false},
		{"common, multibyte, upper case", "LÖSENORD", false},
		{"common with an extra character", "password1x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := secret.CheckPassword(tt.pw)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPassword: got %v, want nil", err)
				}
				return
			}
			assertInvalid(t, err)
		})
	}
}

func TestCheckPasswordRefusesEveryListedPassword(t *testing.T) {
	f, err := os.Open("common-passwords.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[string]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pw := sc.Text()
		switch {
		case pw == "":
			t.Errorf("line %d is empty", len(seen)+1)
		case pw != strings.ToLower(pw):
			t.Errorf("%q is not lowercase", pw)
		case utf8.RuneCountInString(pw) < secret.MinPasswordLength:
			t.Errorf("%q is shorter than any password allowed", pw)
		case seen[pw]:
			t.Errorf("%q is listed twice", pw)
		}
		seen[pw] = true
		if secret.CheckPassword(pw) == nil {
			t.Errorf("CheckPassword(%q): got nil, want an error", pw)
		}
		if secret.CheckPassword(strings.ToUpper(pw)) == nil {
			t.Errorf("CheckPassword(%q): got nil, want an error", strings.ToUpper(pw))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := len(seen), 300; got < want {
		t.Errorf("list holds %d passwords, want at least %d", got, want)
	}
}

func TestCheckPIN(t *testing.T) {
	tests := []struct {
		name      string
		pin       string
		extension string
		ok        bool
	}{
		{"4 digits", "1357", "101", true},
		{"10 digits", "8264019375", "101", true},
		{"3 digits", "135", "101", false},
		{"11 digits", "82640193751", "101", false},
		{"empty", "", "101", false},
		{"letters", "12ab", "101", false},
		{"space", "1357 ", "101", false},
		{"sign", "+1357", "101", false},
		{"non-ASCII digits", "١٣٥٧", "101", false},
		{"full-width digits", "１３５７", "101", false},
		{"one digit repeated", "1111", "101", false},
		{"zeros", "0000", "101", false},
		{"ten nines", "9999999999", "101", false},
		{"run up", "1234", "101", false},
		{"run up from 0", "0123", "101", false},
		{"run up, 6 digits", "345678", "101", false},
		{"run up, 10 digits", "0123456789", "101", false},
		{"run down", "4321", "101", false},
		{"run down, 6 digits", "987654", "101", false},
		{"run down to 0", "3210", "101", false},
		{"run that turns", "1232", "101", true},
		{"run that stops", "12346", "101", true},
		{"run past 9 is no run", "7890", "101", true},
		{"steps of 2", "2468", "101", true},
		{"the extension", "4021", "4021", false},
		{"the extension with a digit more", "40215", "4021", true},
		{"no extension", "4021", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := secret.CheckPIN(tt.pin, tt.extension)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPIN: got %v, want nil", err)
				}
				return
			}
			assertInvalid(t, err)
		})
	}
}

// The messages go back to the person and may be logged; none repeats what it refused.
func TestMessagesDoNotRepeatTheSecret(t *testing.T) {
	long := strings.Repeat("Kq7#", 33)
	for _, err := range []error{
		secret.CheckPassword("Kq7#v"),
		secret.CheckPassword(long),
		secret.CheckPassword("Kq7#\tv2Lm"),
		secret.CheckPassword("QWERTY123"),
		secret.CheckPIN("7a91", "101"),
		secret.CheckPIN("56789", "101"),
		secret.CheckPIN("40217", "40217"),
	} {
		assertInvalid(t, err)
		msg := turnover.ErrorMessage(err)
		for _, s := range []string{"Kq7#", "QWERTY", "qwerty", "7a91", "56789", "40217"} {
			if strings.Contains(msg, s) {
				t.Errorf("message %q repeats the secret", msg)
			}
		}
	}
}

// assertInvalid checks err is an EINVALID application error with a message for people.
func assertInvalid(t *testing.T, err error) {
	t.Helper()
	var e *turnover.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a *turnover.Error", err)
	}
	if got, want := e.Code, turnover.EINVALID; got != want {
		t.Errorf("code: got %q, want %q", got, want)
	}
	if e.Message == "" {
		t.Error("message is empty")
	}
}
