package secret_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"turnover/internal/secret"
)

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerify(t *testing.T) {
	for _, s := range []string{"Tr0ub4dor&3", "correct horse battery staple", "пароль!9", "8264", ""} {
		t.Run(s, func(t *testing.T) {
			encoded := mustHash(t, s)
			if !phc.MatchString(encoded) {
				t.Errorf("Hash: got %q, want the form %s", encoded, phc)
			}
			if strings.Contains(encoded, s) && s != "" {
				t.Errorf("Hash: %q holds the secret", encoded)
			}
			assertVerify(t, s, encoded, true)
			assertVerify(t, s+"x", encoded, false)
			assertVerify(t, strings.ToUpper(s)+"X", encoded, false)
		})
	}
}

func TestHashSalts(t *testing.T) {
	a, b := mustHash(t, "Tr0ub4dor&3"), mustHash(t, "Tr0ub4dor&3")
	if a == b {
		t.Fatalf("two hashes of one secret are both %q", a)
	}
	if saltOf(a) == saltOf(b) {
		t.Errorf("two hashes share the salt %q", saltOf(a))
	}
}

// The reference implementation's own vector (phc-winner-argon2): other parameters than
// Hash uses, and a salt of 8 bytes, still verify.
func TestVerifyReferenceVector(t *testing.T) {
	const encoded = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	assertVerify(t, "password", encoded, true)
	assertVerify(t, "Password", encoded, false)
}

// Hashes made with other parameters than Hash uses today, as older or newer settings
// leave them in the store, still verify.
func TestVerifyOtherParameters(t *testing.T) {
	salt := []byte("a salt of twenty bytes")
	tests := []struct {
		memory, time uint32
		threads      uint8
		keyLen       uint32
	}{
		{8, 1, 1, 16},
		{32, 3, 4, 32},
		{65536, 1, 2, 64},
		{12288, 3, 1, 32},
	}
	for _, tt := range tests {
		encoded := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", tt.memory, tt.time, tt.threads,
			base64.RawStdEncoding.EncodeToString(salt),
			base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte("Tr0ub4dor&3"), salt, tt.time, tt.memory, tt.threads, tt.keyLen)))
		t.Run(encoded, func(t *testing.T) {
			assertVerify(t, "Tr0ub4dor&3", encoded, true)
			assertVerify(t, "Tr0ub4dor&4", encoded, false)
		})
	}
}

func TestVerifyTampered(t *testing.T) {
	encoded := mustHash(t, "Tr0ub4dor&3")
	f := strings.Split(encoded, "$")
	tests := []struct {
		name    string
		encoded string
	}{
		{"memory", strings.Replace(encoded, "m=19456", "m=19457", 1)},
		{"time", strings.Replace(encoded, "t=2", "t=3", 1)},
		{"salt", join(f[1], f[2], f[3], flip(f[4]), f[5])},
		{"hash", join(f[1], f[2], f[3], f[4], flip(f[5]))},
		{"shorter hash", join(f[1], f[2], f[3], f[4], f[5][:24])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertVerify(t, "Tr0ub4dor&3", tt.encoded, false)
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	encoded := mustHash(t, "Tr0ub4dor&3")
	f := strings.Split(encoded, "$")
	salt, hash := f[4], f[5]
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"dollars only", "$$$$$"},
		{"no leading $", encoded[1:]},
		{"trailing $", encoded + "$"},
		{"missing hash", join("argon2id", "v=19", "m=19456,t=2,p=1", salt)},
		{"argon2i", join("argon2i", "v=19", "m=19456,t=2,p=1", salt, hash)},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"version 16", join("argon2id", "v=16", "m=19456,t=2,p=1", salt, hash)},
		{"no version", join("argon2id", "m=19456,t=2,p=1", salt, hash)},
		{"params out of order", join("argon2id", "v=19", "t=2,m=19456,p=1", salt, hash)},
		{"param missing", join("argon2id", "v=19", "m=19456,t=2", salt, hash)},
		{"extra param", join("argon2id", "v=19", "m=19456,t=2,p=1,keyid=a", salt, hash)},
		{"memory not a number", join("argon2id", "v=19", "m=lots,t=2,p=1", salt, hash)},
		{"memory negative", join("argon2id", "v=19", "m=-1,t=2,p=1", salt, hash)},
		{"memory with leading zero", join("argon2id", "v=19", "m=019456,t=2,p=1", salt, hash)},
		{"memory over 32 bits", join("argon2id", "v=19", "m=4294967296,t=2,p=1", salt, hash)},
		{"memory over the limit", join("argon2id", "v=19", "m=4194304,t=2,p=1", salt, hash)},
		{"memory below 8 KiB a lane", join("argon2id", "v=19", "m=31,t=2,p=4", salt, hash)},
		{"time 0", join("argon2id", "v=19", "m=19456,t=0,p=1", salt, hash)},
		{"time over the limit", join("argon2id", "v=19", "m=19456,t=1000,p=1", salt, hash)},
		{"threads 0", join("argon2id", "v=19", "m=19456,t=2,p=0", salt, hash)},
		{"threads over 8 bits", join("argon2id", "v=19", "m=19456,t=2,p=256", salt, hash)},
		{"salt not base64", join("argon2id", "v=19", "m=19456,t=2,p=1", "!!!!!!!!!!!!!!!!!!!!!!", hash)},
		{"salt padded", join("argon2id", "v=19", "m=19456,t=2,p=1", salt+"==", hash)},
		{"salt URL alphabet", join("argon2id", "v=19", "m=19456,t=2,p=1", "-_"+salt[2:], hash)},
		{"salt with a line break", join("argon2id", "v=19", "m=19456,t=2,p=1", salt[:10]+"\n"+salt[10:], hash)},
		{"salt too short", join("argon2id", "v=19", "m=19456,t=2,p=1", "c2FsdA", hash)},
		{"salt empty", join("argon2id", "v=19", "m=19456,t=2,p=1", "", hash)},
		{"hash empty", join("argon2id", "v=19", "m=19456,t=2,p=1", salt, "")},
		{"hash too short", join("argon2id", "v=19", "m=19456,t=2,p=1", salt, hash[:16])},
		{"hash too long", join("argon2id", "v=19", "m=19456,t=2,p=1", salt, strings.Repeat(hash[:40], 3))},
		{"hash with stray low bits", join("argon2id", "v=19", "m=19456,t=2,p=1", salt, hash[:42]+"B")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := secret.Verify("Tr0ub4dor&3", tt.encoded)
			if ok {
				t.Error("Verify: got true, want false")
			}
			if !errors.Is(err, secret.ErrMalformedHash) {
				t.Fatalf("Verify: got error %v, want ErrMalformedHash", err)
			}
			if len(tt.encoded) > 8 && strings.Contains(err.Error(), tt.encoded) {
				t.Errorf("error %q quotes the encoding", err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(mustHash(f, "Tr0ub4dor&3"))
	f.Fuzz(func(t *testing.T, encoded string) {
		ok, err := secret.Verify("Tr0ub4dor&3", encoded)
		if err != nil && ok {
			t.Errorf("Verify: got true with error %v", err)
		}
		if err != nil && !errors.Is(err, secret.ErrMalformedHash) {
			t.Errorf("Verify: got error %v, want ErrMalformedHash", err)
		}
	})
}

func mustHash(tb testing.TB, s string) string {
	tb.Helper()
	encoded, err := secret.Hash(s)
	if err != nil {
		tb.Fatalf("Hash: %v", err)
	}
	return encoded
}

func assertVerify(t *testing.T, s, encoded string, want bool) {
	t.Helper()
	got, err := secret.Verify(s, encoded)
	if err != nil {
		t.Fatalf("Verify(%q): %v", s, err)
	}
	if got != want {
		t.Errorf("Verify(%q): got %v, want %v", s, got, want)
	}
}

func join(fields ...string) string { return "$" + strings.Join(fields, "$") }

// flip changes the first character of unpadded base64 to another, keeping it well formed.
func flip(s string) string {
	c := "A"
	if s[0] == 'A' {
		c = "B"
	}
	return c + s[1:]
}

func saltOf(encoded string) string { return strings.Split(encoded, "$")[4] }
