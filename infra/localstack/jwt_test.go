package localstack

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testAuthorizer = JWTAuthorizer{
	Name:     "PortalJwt",
	Issuer:   "https://auth.example",
	Audience: []string{"portal", "cli"},
}

// TestVerifyTokenKidAndConfig covers what a request to the stack cannot reach: a token
// signed by the right key but not naming it, and an authorizer missing its issuer or
// audience, which must refuse rather than skip the check.
func TestVerifyTokenKidAndConfig(t *testing.T) {
	key, err := generateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	kid := keyID(&key.PublicKey)
	sign := func(kid any, aud string) string {
		t.Helper()
		claims := jwt.MapClaims{"iss": testAuthorizer.Issuer, "aud": aud, "sub": "1003@x", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		if kid != nil {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noIssuer, noAudience := testAuthorizer, testAuthorizer
	noIssuer.Issuer = ""
	noAudience.Audience = nil
	tests := []struct {
		name  string
		a     JWTAuthorizer
		token string
		ok    bool
	}{
		{"kid of the key", testAuthorizer, sign(kid, "portal"), true},
		{"second audience", testAuthorizer, sign(kid, "cli"), true},
		{"no kid", testAuthorizer, sign(nil, "portal"), false},
		{"other kid", testAuthorizer, sign("other", "portal"), false},
		{"kid not a string", testAuthorizer, sign(7, "portal"), false},
		{"authorizer without issuer", noIssuer, sign(kid, "portal"), false},
		{"authorizer without audience", noAudience, sign(kid, "portal"), false},
		{"authorizer without audience, token without aud", noAudience, sign(kid, ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verifyToken(&key.PublicKey, &tt.a, tt.token, now)
			if got := err == nil; got != tt.ok {
				t.Errorf("accepted %v (err %v), want %v", got, err, tt.ok)
			}
		})
	}
}

// TestVerifyTokenTimes pins the time checks to a fixed clock: no leeway either way.
func TestVerifyTokenTimes(t *testing.T) {
	key, err := generateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		c    TokenClaims
		ok   bool
	}{
		{"fresh", TokenClaims{}, true},
		{"exp in a second", TokenClaims{ExpiresAt: now.Add(time.Second)}, true},
		{"exp now", TokenClaims{ExpiresAt: now}, false},
		{"exp a second ago", TokenClaims{ExpiresAt: now.Add(-time.Second)}, false},
		{"no exp", TokenClaims{NoExpiry: true}, false},
		{"nbf now", TokenClaims{NotBefore: now}, true},
		{"nbf in a second", TokenClaims{NotBefore: now.Add(time.Second)}, false},
		{"iat a second ahead", TokenClaims{IssuedAt: now.Add(time.Second)}, false},
		{"iat a day ago", TokenClaims{IssuedAt: now.Add(-24 * time.Hour)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := signToken(key, testAuthorizer, tt.c, now)
			if err != nil {
				t.Fatal(err)
			}
			_, err = verifyToken(&key.PublicKey, &testAuthorizer, tok, now)
			if got := err == nil; got != tt.ok {
				t.Errorf("accepted %v (err %v), want %v", got, err, tt.ok)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Bearer a.b.c", "a.b.c", true},
		{"bearer a.b.c", "a.b.c", true},
		{"  BEARER   a.b.c  ", "a.b.c", true},
		{"a.b.c", "a.b.c", true},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Basic a.b.c", "", false},
		{"Bearer a.b.c extra", "", false},
		{"Bearer ", "", false},
		{"bearer", "", false},
		{"", "", false},
		{"   ", "", false},
	}
	for _, tt := range tests {
		got, err := bearerToken(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
