package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of new hashes: the OWASP minimum (19 MiB, two passes, one lane).
// One lane because a 256 MB Lambda has a fraction of one vCPU, and 19 MiB leaves most of
// its memory to the rest of the handler.
const (
	hashMemory  = 19 * 1024 // KiB
	hashTime    = 2
	hashThreads = 1
	hashKeyLen  = 32
	hashSaltLen = 16
)

// Bounds of what Verify accepts from an encoding. Hashes made with other parameters
// still verify, but an encoding that asks for more memory or work than a Lambda has to
// spare is refused rather than computed.
const (
	maxMemory  = 64 * 1024 // KiB
	maxTime    = 10
	maxThreads = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// ErrMalformedHash is the error, wrapped with what is wrong, of Verify given an
// encoding that is not an argon2id hash it can check.
var ErrMalformedHash = errors.New("malformed argon2id hash")

// Hash hashes secret with argon2id and a fresh random salt, and returns it in the PHC
// string form: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, both in unpadded
// standard base64. Two hashes of one secret differ. It returns an error only if the
// system's random source fails.
func Hash(secret string) (string, error) {
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, hashTime, hashMemory, hashThreads, hashKeyLen)
	return encode(params{memory: hashMemory, time: hashTime, threads: hashThreads}, salt, key), nil
}

// Verify reports whether secret is the one encoded, an argon2id hash in the PHC string
// form, with the parameters the encoding names. A secret that does not match returns
// false and no error. An encoding that is not such a hash, or whose parameters are out
// of bounds, returns an error wrapping ErrMalformedHash; the error never quotes the
// encoding.
func Verify(secret, encoded string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(secret), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

func encode(p params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func decode(encoded string) (p params, salt, key []byte, err error) {
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return p, nil, nil, malformed("want $argon2id$v=…$m=…,t=…,p=…$salt$hash")
	}
	if fields[1] != "argon2id" {
		return p, nil, nil, malformed("not argon2id")
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, malformed("want version %d", argon2.Version)
	}
	if p, err = decodeParams(fields[3]); err != nil {
		return p, nil, nil, err
	}
	if salt, err = decodeBase64("salt", fields[4], minSaltLen, maxSaltLen); err != nil {
		return p, nil, nil, err
	}
	if key, err = decodeBase64("hash", fields[5], minKeyLen, maxKeyLen); err != nil {
		return p, nil, nil, err
	}
	return p, salt, key, nil
}

// decodeParams reads "m=…,t=…,p=…", in that order, as the PHC form has it.
func decodeParams(s string) (params, error) {
	var p params
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return p, malformed("want m=…,t=…,p=…")
	}
	m, err := decodeParam(parts[0], "m", maxMemory)
	if err != nil {
		return p, err
	}
	t, err := decodeParam(parts[1], "t", maxTime)
	if err != nil {
		return p, err
	}
	threads, err := decodeParam(parts[2], "p", maxThreads)
	if err != nil {
		return p, err
	}
	// Argon2 needs 8 KiB of memory per lane; x/crypto would quietly raise less, making
	// a different hash than the encoding claims.
	if m < 8*threads {
		return p, malformed("m below 8 KiB per lane")
	}
	return params{memory: uint32(m), time: uint32(t), threads: uint8(threads)}, nil
}

// decodeParam reads name=N, N a decimal from 1 to max with no leading zero.
func decodeParam(s, name string, max uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, malformed("want %s=…", name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return 0, malformed("%s is not a number", name)
	}
	if n < 1 || n > max {
		return 0, malformed("%s out of range 1 to %d", name, max)
	}
	return n, nil
}

// decodeBase64 reads unpadded standard base64 in its one canonical spelling: the
// decoder would otherwise skip line breaks and ignore stray low bits.
func decodeBase64(name, s string, minLen, maxLen int) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, malformed("%s is not unpadded base64", name)
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, malformed("%s of %d bytes, want %d to %d", name, len(b), minLen, maxLen)
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}
