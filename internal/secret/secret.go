// Package secret holds the rules for the credentials a new user sets when finishing
// account setup (a password and a voicemail PIN) and the hashing that keeps them.
package secret

import (
	_ "embed"
	"strings"
	"unicode"
	"unicode/utf8"

	"turnover/internal/turnover"
)

// Limits of a password, in characters. Long passphrases are welcome; the upper bound
// only keeps the cost of hashing in check.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 128
)

// Limits of a voicemail PIN, in digits: the shortest a phone keypad makes bearable to
// guess at, the longest callers will type.
const (
	MinPINLength = 4
	MaxPINLength = 10
)

// commonPasswords holds well-known and breached passwords, lowercase, one a line.
//
//go:embed common-passwords.txt
var commonPasswords string

var common = lines(commonPasswords)

func lines(s string) map[string]struct{} {
	m := make(map[string]struct{})
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			m[l] = struct{}{}
		}
	}
	return m
}

// CheckPassword checks a password a user chose: 8 to 128 characters, not only spaces,
// no control characters, not one character repeated and not one of the most common
// passwords, whatever the case. Every refusal is an EINVALID error whose message tells
// the person what to change; it never repeats the password.
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return turnover.Errorf(turnover.EINVALID, "The password holds bytes that are not text. Type it again.")
	case n < MinPasswordLength:
		return turnover.Errorf(turnover.EINVALID, "Choose a password of at least %d characters.", MinPasswordLength)
	case n > MaxPasswordLength:
		return turnover.Errorf(turnover.EINVALID, "Choose a password of at most %d characters.", MaxPasswordLength)
	case strings.TrimSpace(pw) == "":
		return turnover.Errorf(turnover.EINVALID, "A password cannot be only spaces. Add letters, digits or symbols.")
	case strings.ContainsFunc(pw, unicode.IsControl):
		return turnover.Errorf(turnover.EINVALID, "Remove tabs, line breaks and other control characters from the password.")
	case repeated(pw):
		return turnover.Errorf(turnover.EINVALID, "A password of one character repeated is easy to guess. Choose another.")
	case isCommon(pw):
		return turnover.Errorf(turnover.EINVALID, "That password is one of the most common, so it is easy to guess. Choose another.")
	}
	return nil
}

// isCommon compares without case and without surrounding spaces, since neither makes a
// listed password any harder to guess.
func isCommon(pw string) bool {
	_, ok := common[strings.ToLower(strings.TrimSpace(pw))]
	return ok
}

// repeated reports whether s is one character over and over.
func repeated(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// CheckPIN checks a voicemail PIN for the given extension: 4 to 10 digits, not one digit
// repeated (1111), not a straight run up or down (1234, 9876) and not the extension
// itself. Every refusal is an EINVALID error whose message tells the person what to
// change; it never repeats the PIN.
func CheckPIN(pin, extension string) error {
	switch {
	case strings.ContainsFunc(pin, func(r rune) bool { return r < '0' || r > '9' }):
		return turnover.Errorf(turnover.EINVALID, "A voicemail PIN may hold digits only.")
	case len(pin) < MinPINLength || len(pin) > MaxPINLength:
		return turnover.Errorf(turnover.EINVALID, "Choose a voicemail PIN of %d to %d digits.", MinPINLength, MaxPINLength)
	case repeated(pin):
		return turnover.Errorf(turnover.EINVALID, "A voicemail PIN of one digit repeated, like 1111, is easy to guess. Choose another.")
	case run(pin):
		return turnover.Errorf(turnover.EINVALID, "A voicemail PIN of digits in a row, like 1234 or 4321, is easy to guess. Choose another.")
	case pin == extension:
		return turnover.Errorf(turnover.EINVALID, "A voicemail PIN cannot be the extension number. Choose another.")
	}
	return nil
}

// run reports whether the digits of s, at least two of them, each go one up from the
// one before, or each one down. 9 is not followed by 0: 7890 is no run.
func run(s string) bool {
	if len(s) < 2 {
		return false
	}
	step := int(s[1]) - int(s[0])
	if step != 1 && step != -1 {
		return false
	}
	for i := 2; i < len(s); i++ {
		if int(s[i])-int(s[i-1]) != step {
			return false
		}
	}
	return true
}
