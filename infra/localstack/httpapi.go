package localstack

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// maxAPIBody is API Gateway's payload limit.
const maxAPIBody = 10 << 20

// route is one HttpApi event of a function.
type route struct {
	Method   string // GET, POST…, or ANY
	Path     string // /v1/{proxy+}, or $default
	Function string // logical id
	Auth     *JWTAuthorizer
	Scopes   []string // AuthorizationScopes; one must be in the token
	segs     []segment
}

type segKind int

const (
	segGreedy segKind = iota // {name+}
	segParam                 // {name}
	segLiteral
)

type segment struct {
	kind segKind
	text string // literal text or parameter name
}

func newRoute(method, path string) (*route, error) {
	r := &route{Method: method, Path: path}
	if path == "$default" {
		return r, nil
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if path == "/" {
		parts = nil
	}
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}"):
			if i != len(parts)-1 {
				return nil, fmt.Errorf("path %q: a greedy variable must come last", path)
			}
			r.segs = append(r.segs, segment{segGreedy, p[1 : len(p)-2]})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			r.segs = append(r.segs, segment{segParam, p[1 : len(p)-1]})
		default:
			r.segs = append(r.segs, segment{segLiteral, p})
		}
	}
	return r, nil
}

// RouteKey is how API Gateway names the route, e.g. "ANY /v1/{proxy+}".
func (r *route) RouteKey() string {
	if r.Path == "$default" {
		return "$default"
	}
	return r.Method + " " + r.Path
}

// match reports whether the route takes method and path, with the path parameters.
func (r *route) match(method, path string) (map[string]string, bool) {
	if r.Method != "ANY" && r.Method != method {
		return nil, false
	}
	if r.Path == "$default" {
		return nil, true
	}
	trimmed := strings.TrimPrefix(path, "/")
	var parts []string
	if trimmed != "" {
		parts = strings.Split(trimmed, "/")
	}
	params := map[string]string{}
	for i, s := range r.segs {
		if s.kind == segGreedy {
			rest := strings.Join(parts[min(i, len(parts)):], "/")
			if rest == "" {
				return nil, false
			}
			params[s.text] = rest
			return params, true
		}
		if i >= len(parts) || parts[i] == "" {
			return nil, false
		}
		if s.kind == segLiteral {
			if parts[i] != s.text {
				return nil, false
			}
			continue
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			v = parts[i]
		}
		params[s.text] = v
	}
	if len(parts) != len(r.segs) {
		return nil, false
	}
	if len(params) == 0 {
		params = nil
	}
	return params, true
}

// moreSpecific reports whether a wins over b when both match, the way API Gateway
// picks: segment by segment literals beat variables beat greedy variables, any route
// beats $default, and a method beats ANY.
func moreSpecific(a, b *route) bool {
	if (a.Path == "$default") != (b.Path == "$default") {
		return b.Path == "$default"
	}
	for i := 0; i < len(a.segs) && i < len(b.segs); i++ {
		if a.segs[i].kind != b.segs[i].kind {
			return a.segs[i].kind > b.segs[i].kind
		}
	}
	if len(a.segs) != len(b.segs) {
		return len(a.segs) > len(b.segs)
	}
	return a.Method != "ANY" && b.Method == "ANY"
}

func (s *Stack) findRoute(method, path string) (*route, map[string]string) {
	var (
		best   *route
		params map[string]string
	)
	for _, r := range s.routes {
		p, ok := r.match(method, path)
		if ok && (best == nil || moreSpecific(r, best)) {
			best, params = r, p
		}
	}
	return best, params
}

func writeAPIMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// serveAPI is the HTTP API: it authorizes, turns the request into a payload format 2.0
// event, invokes the route's function and writes back its response.
func (s *Stack) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	requestID := newRequestID()
	w.Header().Set("Apigw-Requestid", requestID)
	w.Header().Set("X-Request-Id", requestID)
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		if !s.ready.Load() {
			writeAPIMessage(w, http.StatusServiceUnavailable, "starting")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
		return
	}
	switch r.URL.Path {
	case "/_local/mail":
		s.serveMail(w, r)
		return
	case "/_local/mail.html":
		s.serveMailPage(w, r)
		return
	case "/_local/schedules:fire":
		s.serveFireSchedules(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	s.serveRoute(sw, r, requestID)
	s.log.Info("api", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start).Round(time.Millisecond), "requestId", requestID)
}

// statusWriter records the status a request was answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx answers (100 Continue) come before the final one.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Stack) serveRoute(w http.ResponseWriter, r *http.Request, requestID string) {
	if !s.ready.Load() {
		writeAPIMessage(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	rt, params := s.findRoute(r.Method, r.URL.Path)
	if rt == nil {
		writeAPIMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	var tok *verifiedToken
	if rt.Auth != nil {
		var err error
		if tok, err = s.authorize(r, rt.Auth); err != nil {
			s.log.Debug("api unauthorized", "path", r.URL.Path, "reason", err)
			w.Header().Set("Www-Authenticate", `Bearer error="invalid_token"`)
			writeAPIMessage(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if len(rt.Scopes) > 0 && !anyScope(tok.Scopes, rt.Scopes) {
			writeAPIMessage(w, http.StatusForbidden, "Forbidden")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			return
		}
		writeAPIMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	ev := s.apiEvent(r, rt, params, tok, body, requestID)
	payload, err := json.Marshal(ev)
	if err != nil {
		writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	f := s.functions[s.plan.resources.Functions[rt.Function]]
	call := Call{Service: "lambda", Operation: "Invoke"}
	s.calls.add(call)
	if fault := s.fault(call); fault != nil {
		writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	res := s.invoke(s.baseCtx, f, newRequestID(), payload)
	if res.Err != nil {
		if res.Err.Type == "Sandbox.Timedout" {
			writeAPIMessage(w, http.StatusServiceUnavailable, "Service Unavailable")
			return
		}
		writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	writeAPIResponse(w, res.Payload)
}

func anyScope(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

func (s *Stack) authorize(r *http.Request, a *JWTAuthorizer) (*verifiedToken, error) {
	header := "Authorization"
	if h, ok := strings.CutPrefix(a.IdentitySource, "$request.header."); ok {
		header = h
	}
	vs := r.Header.Values(header)
	if len(vs) != 1 {
		return nil, fmt.Errorf("%d %s headers, want one", len(vs), header)
	}
	raw, err := bearerToken(vs[0])
	if err != nil {
		return nil, err
	}
	return verifyToken(&s.key.PublicKey, a, raw, time.Now())
}

// bearerToken returns the token of an identity source value, "Bearer <token>" or the
// bare token as API Gateway also takes it. Another scheme, such as Basic, is refused
// here rather than left for the JWT parser to trip over.
func bearerToken(v string) (string, error) {
	v = strings.TrimSpace(v)
	if scheme, rest, ok := strings.Cut(v, " "); ok {
		if !strings.EqualFold(scheme, "Bearer") {
			return "", errors.New("not a bearer token")
		}
		v = strings.TrimSpace(rest)
	}
	if v == "" || strings.EqualFold(v, "Bearer") || strings.ContainsAny(v, " \t") {
		return "", errors.New("no token")
	}
	return v, nil
}

// apiEvent builds the payload format 2.0 event API Gateway sends for r.
func (s *Stack) apiEvent(r *http.Request, rt *route, params map[string]string, tok *verifiedToken, body []byte, requestID string) events.APIGatewayV2HTTPRequest {
	now := time.Now()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       rt.RouteKey(),
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		PathParameters: params,
	}
	for k, vs := range r.Header {
		k = strings.ToLower(k)
		if k == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		ev.Headers[k] = strings.Join(vs, ",")
	}
	ev.Headers["host"] = r.Host
	ev.Headers["x-forwarded-proto"] = "http"
	ev.Headers["x-amzn-trace-id"] = "Root=1-" + fmt.Sprintf("%08x", now.Unix()) + "-" + strings.ReplaceAll(requestID, "-", "")[:24]
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	sourceIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		sourceIP = r.RemoteAddr
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		ev.Headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		ev.Headers["x-forwarded-for"] = sourceIP
	}
	domain := r.Host
	prefix, _, _ := strings.Cut(domain, ".")
	ev.RequestContext = events.APIGatewayV2HTTPRequestContext{
		RouteKey:     rt.RouteKey(),
		AccountID:    AccountID,
		Stage:        "$default",
		RequestID:    requestID,
		APIID:        APIID,
		DomainName:   domain,
		DomainPrefix: prefix,
		Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		TimeEpoch:    now.UnixMilli(),
		HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
			Method:    r.Method,
			Path:      r.URL.Path,
			Protocol:  r.Proto,
			SourceIP:  sourceIP,
			UserAgent: r.UserAgent(),
		},
	}
	if tok != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: tok.Claims, Scopes: tok.Scopes},
		}
	}
	if len(body) > 0 {
		if isTextContent(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// isTextContent reports whether API Gateway passes a body of this type as text.
func isTextContent(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/x-www-form-urlencoded", mt == "application/graphql",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// writeAPIResponse writes a function's payload format 2.0 response. A payload without
// a statusCode is a 200 JSON body, as API Gateway infers it.
func writeAPIResponse(w http.ResponseWriter, payload []byte) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(payload, &probe); err != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(payload)
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 999 {
		writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	h := w.Header()
	keys := make([]string, 0, len(resp.MultiValueHeaders))
	for k := range resp.MultiValueHeaders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.MultiValueHeaders[k] {
			h.Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			writeAPIMessage(w, http.StatusInternalServerError, "Internal Server Error")
			return
		}
		body = b
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}
