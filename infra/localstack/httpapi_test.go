package localstack_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"turnover/infra/localstack"
)

// apiDo sends a request to the shared stack's HTTP API with the token, if any.
func apiDo(t *testing.T, method, path, token string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return sendURL(t, method, stack.APIURL+path, token, body, header)
}

// sendURL sends one request and reads its whole answer.
func sendURL(t *testing.T, method, url, token string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func apiGet(t *testing.T, path, token string) (*http.Response, []byte) {
	t.Helper()
	return apiDo(t, http.MethodGet, path, token, nil, nil)
}

func mustToken(t *testing.T, c localstack.TokenClaims) string {
	t.Helper()
	tok, err := stack.Token(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAPIAuthorizer sends tokens to a route behind the JWT authorizer. Each refused
// token is signed by the stack's key unless the signature is what is wrong, so that its
// one defect is the reason it is refused.
func TestAPIAuthorizer(t *testing.T) {
	valid := mustToken(t, localstack.TokenClaims{})
	claims, kid := unverifiedClaims(t, valid)
	audience, _ := claims["aud"].(string)
	if audience == "" {
		t.Fatalf("dev token aud %v, want a string", claims["aud"])
	}
	parts := strings.Split(valid, ".")
	other := strings.Split(mustToken(t, localstack.TokenClaims{Domain: "acme"}), ".")

	pubDER, err := x509.MarshalPKIXPublicKey(stack.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pkcs1DER := x509.MarshalPKCS1PublicKey(stack.PublicKey())
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(method jwt.SigningMethod, key any) string {
		t.Helper()
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	unsigned := func(alg string) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT","kid":"` + kid + `"}`))
		return h + "." + parts[1] + "."
	}
	payload := decodeSegment(t, parts[1])
	editedPayload := strings.Replace(payload, `"domain":"niftywidgets"`, `"domain":"acme"`, 1)
	if editedPayload == payload {
		t.Fatalf("payload %s has no domain claim to edit", payload)
	}
	edited := base64.RawURLEncoding.EncodeToString([]byte(editedPayload))
	now := time.Now()

	tests := []struct {
		name   string
		header []string // Authorization header values
		want   int
	}{
		{"valid", []string{"Bearer " + valid}, http.StatusOK},
		{"valid, lower-case scheme", []string{"bearer " + valid}, http.StatusOK},
		{"aud array holding the audience", []string{"Bearer " + mustToken(t, localstack.TokenClaims{Audiences: []string{"someone-else", audience}})}, http.StatusOK},
		{"nbf a minute ago", []string{"Bearer " + mustToken(t, localstack.TokenClaims{NotBefore: now.Add(-time.Minute)})}, http.StatusOK},

		{"alg none", []string{"Bearer " + unsigned("none")}, http.StatusUnauthorized},
		{"alg None", []string{"Bearer " + unsigned("None")}, http.StatusUnauthorized},
		{"alg none, signature kept", []string{"Bearer " + unsigned("none") + parts[2]}, http.StatusUnauthorized},
		{"HS256 keyed with the public key PEM", []string{"Bearer " + sign(jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))}, http.StatusUnauthorized},
		{"HS256 keyed with the PKCS#1 public key PEM", []string{"Bearer " + sign(jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1DER}))}, http.StatusUnauthorized},
		{"HS256 keyed with the public key DER", []string{"Bearer " + sign(jwt.SigningMethodHS256, pubDER)}, http.StatusUnauthorized},
		{"HS256 keyed with the PKCS#1 public key DER", []string{"Bearer " + sign(jwt.SigningMethodHS256, pkcs1DER)}, http.StatusUnauthorized},
		{"RS256 signed by another key", []string{"Bearer " + sign(jwt.SigningMethodRS256, otherKey)}, http.StatusUnauthorized},
		{"wrong iss", []string{"Bearer " + mustToken(t, localstack.TokenClaims{Issuer: "https://evil.example"})}, http.StatusUnauthorized},
		{"wrong aud", []string{"Bearer " + mustToken(t, localstack.TokenClaims{Audience: "someone-else"})}, http.StatusUnauthorized},
		{"aud array without the audience", []string{"Bearer " + mustToken(t, localstack.TokenClaims{Audiences: []string{"someone-else", audience + "x"}})}, http.StatusUnauthorized},
		{"expired", []string{"Bearer " + mustToken(t, localstack.TokenClaims{ExpiresAt: now.Add(-time.Hour)})}, http.StatusUnauthorized},
		{"expired a second ago", []string{"Bearer " + mustToken(t, localstack.TokenClaims{ExpiresAt: now.Add(-time.Second)})}, http.StatusUnauthorized},
		{"no exp", []string{"Bearer " + mustToken(t, localstack.TokenClaims{NoExpiry: true})}, http.StatusUnauthorized},
		{"nbf in 5 minutes", []string{"Bearer " + mustToken(t, localstack.TokenClaims{NotBefore: now.Add(5 * time.Minute)})}, http.StatusUnauthorized},
		{"iat in a day", []string{"Bearer " + mustToken(t, localstack.TokenClaims{IssuedAt: now.Add(24 * time.Hour)})}, http.StatusUnauthorized},
		{"payload of another token", []string{"Bearer " + parts[0] + "." + other[1] + "." + parts[2]}, http.StatusUnauthorized},
		{"payload edited", []string{"Bearer " + parts[0] + "." + edited + "." + parts[2]}, http.StatusUnauthorized},
		{"signature cut off", []string{"Bearer " + parts[0] + "." + parts[1] + "."}, http.StatusUnauthorized},
		{"Basic credentials", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("1003@niftywidgets:secret"))}, http.StatusUnauthorized},
		{"valid token under Basic", []string{"Basic " + valid}, http.StatusUnauthorized},
		{"two Authorization headers", []string{"Bearer " + valid, "Bearer " + valid}, http.StatusUnauthorized},
		{"no header", nil, http.StatusUnauthorized},
		{"empty header", []string{""}, http.StatusUnauthorized},
		{"empty bearer", []string{"Bearer "}, http.StatusUnauthorized},
		{"bearer alone", []string{"Bearer"}, http.StatusUnauthorized},
		{"garbage", []string{"Bearer not.a.token"}, http.StatusUnauthorized},
		{"garbage bytes", []string{"Bearer %%%.@@@.!!!"}, http.StatusUnauthorized},
		{"token and trailing words", []string{"Bearer " + valid + " extra"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fakes.count("api")
			h := http.Header{"Authorization": tt.header}
			resp, body := apiDo(t, http.MethodGet, "/v1/domains/niftywidgets/users", "", nil, h)
			ran := fakes.count("api") - before
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d body %s, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want != http.StatusOK {
				if got := strings.TrimSpace(string(body)); got != `{"message":"Unauthorized"}` {
					t.Errorf("body %s, want {\"message\":\"Unauthorized\"}", got)
				}
				if ran != 0 {
					t.Errorf("the function ran %d times for a refused token", ran)
				}
				return
			}
			if ran != 1 {
				t.Errorf("the function ran %d times, want 1", ran)
			}
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("event %s: %v", body, err)
			}
			if got := ev.RequestContext.Authorizer.JWT.Claims["sub"]; got != "1003@niftywidgets" {
				t.Errorf("sub claim %q, want 1003@niftywidgets", got)
			}
		})
	}
}

// unverifiedClaims returns the claims and kid of a token without checking it.
func unverifiedClaims(t *testing.T, token string) (jwt.MapClaims, string) {
	t.Helper()
	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		t.Fatal("dev token has no kid")
	}
	return claims, kid
}

func decodeSegment(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAPIInvokesFunctionWithV2Event(t *testing.T) {
	tok := mustToken(t, localstack.TokenClaims{Subject: "1001@acme", Domain: "acme", Scope: "reseller extra", Domains: []string{"acme", "beta"}})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	h.Set("Cookie", "c1=v1; c2=v2")
	resp, body := apiDo(t, http.MethodPost, "/v1/domains/acme/resets:preview?x=1&y=2&x=3", tok, strings.NewReader(`{"users":["1002"]}`), h)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Fake") != "api" || resp.Header.Get("Set-Cookie") != "a=1" {
		t.Errorf("response headers %v, want the function's", resp.Header)
	}
	if resp.Header.Get("Apigw-Requestid") == "" {
		t.Error("no apigw-requestid header")
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("event %s: %v", body, err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"version", ev.Version, "2.0"},
		{"routeKey", ev.RouteKey, "ANY /v1/{proxy+}"},
		{"requestContext.routeKey", ev.RequestContext.RouteKey, "ANY /v1/{proxy+}"},
		{"rawPath", ev.RawPath, "/v1/domains/acme/resets:preview"},
		{"rawQueryString", ev.RawQueryString, "x=1&y=2&x=3"},
		{"query x", ev.QueryStringParameters["x"], "1,3"},
		{"proxy", ev.PathParameters["proxy"], "domains/acme/resets:preview"},
		{"method", ev.RequestContext.HTTP.Method, "POST"},
		{"http.path", ev.RequestContext.HTTP.Path, "/v1/domains/acme/resets:preview"},
		{"stage", ev.RequestContext.Stage, "$default"},
		{"apiId", ev.RequestContext.APIID, "local"},
		{"accountId", ev.RequestContext.AccountID, "123456789012"},
		{"sourceIp", ev.RequestContext.HTTP.SourceIP, "127.0.0.1"},
		{"requestId", ev.RequestContext.RequestID, resp.Header.Get("Apigw-Requestid")},
		{"content-type", ev.Headers["content-type"], "application/json"},
		{"multi-value header", ev.Headers["x-multi"], "a,b"},
		{"body", ev.Body, `{"users":["1002"]}`},
		{"sub", ev.RequestContext.Authorizer.JWT.Claims["sub"], "1001@acme"},
		{"domain", ev.RequestContext.Authorizer.JWT.Claims["domain"], "acme"},
		{"scope", ev.RequestContext.Authorizer.JWT.Claims["scope"], "reseller extra"},
		{"domains", ev.RequestContext.Authorizer.JWT.Claims["domains"], "[acme beta]"},
		{"iss", ev.RequestContext.Authorizer.JWT.Claims["iss"], "https://auth.turnover.localhost"},
		{"aud", ev.RequestContext.Authorizer.JWT.Claims["aud"], "turnover-portal"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if ev.IsBase64Encoded {
		t.Error("a JSON body came base64-encoded")
	}
	if exp := ev.RequestContext.Authorizer.JWT.Claims["exp"]; len(exp) != 10 || strings.ContainsAny(exp, ".e") {
		t.Errorf("exp claim %q, want whole seconds in decimal", exp)
	}
	if got := strings.Join(ev.RequestContext.Authorizer.JWT.Scopes, " "); got != "reseller extra" {
		t.Errorf("scopes %q", got)
	}
	if got := strings.Join(ev.Cookies, ";"); got != "c1=v1;c2=v2" {
		t.Errorf("cookies %q", got)
	}
	if _, ok := ev.Headers["cookie"]; ok {
		t.Error("cookie header kept beside cookies")
	}
	if ev.RequestContext.TimeEpoch == 0 || ev.RequestContext.Time == "" {
		t.Error("no request time")
	}
}

func TestAPIRawTokenAndBinaryBody(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", mustToken(t, localstack.TokenClaims{}))
	h.Set("Content-Type", "audio/wav")
	resp, body := apiDo(t, http.MethodPut, "/v1/x", "", strings.NewReader("\x00\x01RIFF"), h)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString([]byte("\x00\x01RIFF")) {
		t.Errorf("body %q base64 %v, want the bytes base64-encoded", ev.Body, ev.IsBase64Encoded)
	}
	if ev.RequestContext.Authorizer.JWT.Claims["sub"] != "1003@niftywidgets" {
		t.Errorf("default subject %q", ev.RequestContext.Authorizer.JWT.Claims["sub"])
	}
}

func TestAPIFunctionErrorIs500(t *testing.T) {
	resp, body := apiGet(t, "/v1/fail", mustToken(t, localstack.TokenClaims{}))
	if resp.StatusCode != 500 || strings.TrimSpace(string(body)) != `{"message":"Internal Server Error"}` {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
}

func TestAPIUnknownRoute(t *testing.T) {
	before := fakes.count("api")
	for _, p := range []string{"/", "/v2/x", "/v1"} {
		resp, body := apiGet(t, p, mustToken(t, localstack.TokenClaims{}))
		if resp.StatusCode != 404 || strings.TrimSpace(string(body)) != `{"message":"Not Found"}` {
			t.Errorf("GET %s: status %d body %s, want 404 Not Found", p, resp.StatusCode, body)
		}
	}
	if fakes.count("api") != before {
		t.Error("the function ran for an unknown route")
	}
}

func TestAPIBodyLimit(t *testing.T) {
	resp, _ := apiDo(t, http.MethodPost, "/v1/big", mustToken(t, localstack.TokenClaims{}), strings.NewReader(strings.Repeat("x", 10<<20+1)), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	resp, body := apiGet(t, "/healthz", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
}
