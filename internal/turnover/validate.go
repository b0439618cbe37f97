package turnover

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a new identity's fields.
const (
	maxNameLength  = 64
	maxEmailLength = 254
)

// Validate checks a new identity: a first and last name of 1 to 64 characters, an
// email address, a department of at most 64 characters. It returns an EINVALID error
// that names the field.
func (n NewIdentity) Validate() error {
	for _, f := range []struct{ name, value string }{{"firstName", n.FirstName}, {"lastName", n.LastName}} {
		if err := checkName(f.name, f.value, true); err != nil {
			return err
		}
	}
	if err := checkName("department", n.Department, false); err != nil {
		return err
	}
	if !ValidEmail(n.Email) {
		return Errorf(EINVALID, "Extension %s: %q is not an email address.", n.Extension, n.Email)
	}
	return nil
}

func checkName(field, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return Errorf(EINVALID, "%s is required.", field)
	case utf8.RuneCountInString(v) > maxNameLength:
		return Errorf(EINVALID, "%s may hold at most %d characters.", field, maxNameLength)
	case v != strings.TrimSpace(v):
		return Errorf(EINVALID, "%s may not start or end with spaces.", field)
	case strings.ContainsFunc(v, unicode.IsControl):
		return Errorf(EINVALID, "%s may not hold control characters.", field)
	case !utf8.ValidString(v):
		// JSON bodies arrive as text, but a CSV import hands over raw bytes.
		return Errorf(EINVALID, "%s holds bytes that are not UTF-8 text.", field)
	}
	return nil
}

// ValidEmail reports whether s is a bare email address (no display name), as a welcome
// email can be sent to.
func ValidEmail(s string) bool {
	// net/mail lets any non-ASCII character into an address, C1 controls and Unicode
	// spaces and line separators included; no mailbox has them, and SES refuses them.
	if s == "" || len(s) > maxEmailLength || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndex(s, "@"):], ".")
}
