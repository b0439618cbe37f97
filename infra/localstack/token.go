package localstack

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Default claims of a dev token.
const (
	DefaultDomain   = "niftywidgets"
	DefaultSubject  = "1003@" + DefaultDomain
	DefaultScope    = "office_manager"
	DefaultTokenTTL = 12 * time.Hour
)

// JWTAuthorizer is a JWT authorizer of an HTTP API in the template.
type JWTAuthorizer struct {
	Name     string
	Issuer   string
	Audience []string
	// IdentitySource is where the token is read, e.g. $request.header.Authorization.
	IdentitySource string
}

// TokenClaims are the claims of a dev token. Zero fields take the defaults: subject
// 1003@<domain>, domain niftywidgets, scope office_manager, the authorizer's issuer and
// first audience, issued now, and an expiry TTL (12h) from now.
type TokenClaims struct {
	Subject string
	Domain  string
	Scope   string
	// Domains, when set, becomes the array claim "domains".
	Domains []string
	TTL     time.Duration

	// The fields below override the defaults, mostly for tokens that must fail.
	Issuer   string
	Audience string
	// Audiences, when set, becomes the array claim "aud" in place of Audience.
	Audiences []string
	ExpiresAt time.Time
	// NoExpiry leaves out the "exp" claim.
	NoExpiry bool
	// IssuedAt replaces the "iat" of now.
	IssuedAt time.Time
	// NotBefore, when set, becomes the "nbf" claim.
	NotBefore time.Time
}

// DefaultJWTAuthorizer returns the default authorizer of the first HTTP API in
// dir/template.yaml that has one. It fails when the template has none.
func DefaultJWTAuthorizer(dir string, params map[string]string) (JWTAuthorizer, error) {
	t, err := LoadTemplate(dir, params)
	if err != nil {
		return JWTAuthorizer{}, err
	}
	p, err := makeAuthPlan(t)
	if err != nil {
		return JWTAuthorizer{}, err
	}
	if p.defaultAuth == nil {
		return JWTAuthorizer{}, errors.New("the template's HTTP APIs have no default JWT authorizer")
	}
	return *p.defaultAuth, nil
}

func makeAuthPlan(t *Template) (*plan, error) {
	p := &plan{authorizers: map[string]JWTAuthorizer{}}
	for _, r := range t.ResourcesOfType(typeHTTPAPI) {
		if err := p.addAuthorizers(t, r.LogicalID, t.withGlobals("HttpApi", r.Properties)); err != nil {
			return nil, err
		}
	}
	if p.defaultAuth == nil {
		if err := p.addAuthorizers(t, implicitAPI, t.withGlobals("HttpApi", nil)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// SignToken signs a dev token with the key in keyFile (created when missing) for the
// authorizer a. It fails when the key file cannot be read, created or parsed.
func SignToken(keyFile string, a JWTAuthorizer, c TokenClaims) (string, error) {
	if keyFile == "" {
		return "", errors.New("sign token: no key file")
	}
	key, err := LoadOrCreateKey(keyFile)
	if err != nil {
		return "", err
	}
	return signToken(key, a, c, time.Now())
}

func signToken(key *rsa.PrivateKey, a JWTAuthorizer, c TokenClaims, now time.Time) (string, error) {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.Subject == "" {
		c.Subject = "1003@" + c.Domain
	}
	if c.Scope == "" {
		c.Scope = DefaultScope
	}
	if c.TTL == 0 {
		c.TTL = DefaultTokenTTL
	}
	if c.Issuer == "" {
		c.Issuer = a.Issuer
	}
	if c.Audience == "" && len(a.Audience) > 0 {
		c.Audience = a.Audience[0]
	}
	exp := now.Add(c.TTL)
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt
	}
	iat := now
	if !c.IssuedAt.IsZero() {
		iat = c.IssuedAt
	}
	claims := jwt.MapClaims{
		"iss":    c.Issuer,
		"sub":    c.Subject,
		"aud":    c.Audience,
		"domain": c.Domain,
		"scope":  c.Scope,
		"iat":    iat.Unix(),
		"exp":    exp.Unix(),
	}
	if len(c.Audiences) > 0 {
		claims["aud"] = c.Audiences
	}
	if c.NoExpiry {
		delete(claims, "exp")
	}
	if !c.NotBefore.IsZero() {
		claims["nbf"] = c.NotBefore.Unix()
	}
	if len(c.Domains) > 0 {
		claims["domains"] = c.Domains
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = keyID(&key.PublicKey)
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// PublicKey returns the public half of the key that signs and checks the HTTP API's
// tokens, as an identity provider publishes it in its JWKS.
func (s *Stack) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// keyID names a key in a token's kid header, as a JWKS entry would.
func keyID(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// LoadOrCreateKey reads an RSA private key (PKCS#1 or PKCS#8 PEM) from path, or makes a
// 2048-bit one and writes it there (mode 0600, parent folders made). Two processes
// racing to make it end up with the same key.
func LoadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return parseKey(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := generateKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp.Name(), path)
		}
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path)
		}
	}
	if err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func generateKey() (*rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	return key, nil
}

func parseKey(path string, b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an RSA key", path)
	}
	return rk, nil
}

// verifiedToken is what the authorizer hands to the integration.
type verifiedToken struct {
	Claims map[string]string
	Scopes []string
}

// verifyToken checks a token the way the HTTP API JWT authorizer does: RS256 signed by
// key and naming it by kid, iss equal to the issuer, aud holding one of the audiences,
// exp present and in the future, nbf and iat not in the future. There is no leeway:
// the only key that verifies is the stack's, so signer and checker share one clock.
// An authorizer without an issuer or an audience refuses every token rather than
// skipping the check. The error says why a token was refused, for the log only.
func verifyToken(key *rsa.PublicKey, a *JWTAuthorizer, raw string, now time.Time) (*verifiedToken, error) {
	if a.Issuer == "" {
		return nil, fmt.Errorf("authorizer %s has no issuer", a.Name)
	}
	if len(a.Audience) == 0 {
		return nil, fmt.Errorf("authorizer %s has no audience", a.Name)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithIssuer(a.Issuer),
		jwt.WithAudience(a.Audience...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithJSONNumber(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	kid := keyID(key)
	claims := jwt.MapClaims{}
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if got, _ := t.Header["kid"].(string); got != kid {
			return nil, fmt.Errorf("unknown kid %q", got)
		}
		return key, nil
	})
	if err != nil {
		return nil, err
	}
	v := &verifiedToken{Claims: make(map[string]string, len(claims))}
	for k, c := range claims {
		v.Claims[k] = claimString(c)
	}
	switch s := claims["scope"].(type) {
	case string:
		v.Scopes = strings.Fields(s)
	}
	if len(v.Scopes) == 0 {
		switch s := claims["scp"].(type) {
		case string:
			v.Scopes = strings.Fields(s)
		case []any:
			for _, e := range s {
				v.Scopes = append(v.Scopes, claimString(e))
			}
		}
	}
	return v, nil
}

// claimString renders a claim the way API Gateway puts it in
// requestContext.authorizer.jwt.claims: numbers in decimal, arrays as "[a b]".
func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return x.String()
		}
		if f, err := x.Float64(); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = claimString(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + claimString(x[k])
		}
		return "map[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}
