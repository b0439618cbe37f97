package localstack_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/golang-jwt/jwt/v5"

	"turnover/infra/localstack"
)

// apiDo sends a request to the HTTP API with the token, if any.
func apiDo(t *testing.T, method, path, token string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, stack.APIURL+path, body)
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

func TestAPIRejectsBadTokens(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := mustToken(t, localstack.TokenClaims{})
	parts := strings.Split(valid, ".")
	claims := jwt.MapClaims{"iss": "https://auth.turnover.localhost", "aud": "turnover-portal", "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}
	foreign, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(otherKey)
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("secret"))
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": claims["iss"], "aud": claims["aud"]}).SignedString(otherKey)
	tests := []struct {
		name   string
		header string
	}{
		{"no token", ""},
		{"garbage", "Bearer not.a.token"},
		{"wrong signature", "Bearer " + foreign},
		{"tampered payload", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"1001@niftywidgets","domain":"other","iss":"https://auth.turnover.localhost","aud":"turnover-portal","exp":9999999999}`)) + "." + parts[2]},
		{"HS256", "Bearer " + hs},
		{"no exp", "Bearer " + noExp},
		{"wrong issuer", "Bearer " + mustToken(t, localstack.TokenClaims{Issuer: "https://evil.example"})},
		{"wrong audience", "Bearer " + mustToken(t, localstack.TokenClaims{Audience: "someone-else"})},
		{"expired", "Bearer " + mustToken(t, localstack.TokenClaims{ExpiresAt: time.Now().Add(-time.Minute)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fakes.count("api")
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			resp, body := apiDo(t, http.MethodGet, "/v1/domains/niftywidgets/users", "", nil, h)
			if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != `{"message":"Unauthorized"}` {
				t.Errorf("status %d body %s, want 401 Unauthorized", resp.StatusCode, body)
			}
			if fakes.count("api") != before {
				t.Error("the function ran for an unauthorized request")
			}
		})
	}
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
