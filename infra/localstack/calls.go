package localstack

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Call is one AWS API call crossing the front door.
type Call struct {
	// Service is the signing name of the service: dynamodb, s3, states, lambda, ses…
	Service string
	// Operation is the API operation: Query, PutObject, StartExecution, Invoke…
	Operation string
}

func (c Call) String() string { return c.Service + "." + c.Operation }

// FaultInjector decides, for every AWS call crossing the front door, whether to delay
// it or fail it. It is called concurrently.
type FaultInjector interface {
	Inject(c Call) *Fault
}

// FaultFunc adapts a function to FaultInjector.
type FaultFunc func(c Call) *Fault

// Inject calls f.
func (f FaultFunc) Inject(c Call) *Fault { return f(c) }

// Fault is what happens to one call: it waits Delay, then, when Status is not 0, fails
// with an AWS-shaped error of that HTTP status, error code and message instead of
// reaching the service.
type Fault struct {
	Delay   time.Duration
	Status  int
	Code    string
	Message string
}

// callCounter counts calls by "service.Operation".
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *callCounter) add(call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[call.String()]++
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}

// protocol is how a service shapes its errors.
type protocol int

const (
	protoRESTJSON protocol = iota // lambda, sesv2: x-amzn-ErrorType header, JSON body
	protoJSON                     // X-Amz-Target services: {"__type":…}
	protoRESTXML                  // s3: <Error><Code>…
	protoQuery                    // Action= services: <ErrorResponse><Error>…
)

// classify names the service and operation of a request. It may read the body of a
// form-encoded request; it leaves r.Body readable from the start.
func classify(r *http.Request) (Call, protocol) {
	c := Call{Service: signingService(r), Operation: "Unknown"}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		c.Operation = t[strings.LastIndexByte(t, '.')+1:]
		return c, protoJSON
	}
	switch c.Service {
	case "s3":
		c.Operation = s3Operation(r)
		return c, protoRESTXML
	case "lambda":
		c.Operation = lambdaOperation(r)
		return c, protoRESTJSON
	case "ses":
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			c.Operation = sesv2Operation(r)
			return c, protoRESTJSON
		}
	}
	if action := queryAction(r); action != "" {
		c.Operation = action
		return c, protoQuery
	}
	if c.Service == "unknown" && strings.HasPrefix(r.URL.Path, "/2015-03-31/functions/") {
		c.Service, c.Operation = "lambda", lambdaOperation(r)
	}
	return c, protoRESTJSON
}

// signingService reads the service from the SigV4 credential scope
// (Credential=AKID/20240101/us-east-1/dynamodb/aws4_request), in the Authorization
// header or, for presigned URLs, the X-Amz-Credential query parameter.
func signingService(r *http.Request) string {
	cred := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		if i := strings.Index(auth, "Credential="); i >= 0 {
			cred = auth[i+len("Credential="):]
			if j := strings.IndexAny(cred, ", "); j >= 0 {
				cred = cred[:j]
			}
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) >= 5 {
		return parts[len(parts)-2]
	}
	return "unknown"
}

func queryAction(r *http.Request) string {
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if r.Method != http.MethodPost || r.Body == nil ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	rest := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), rest), rest}
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return ""
	}
	return form.Get("Action")
}

// s3Subresources maps a subresource query key to the operation name's suffix.
var s3BucketSubresources = map[string]string{
	"encryption":          "BucketEncryption",
	"publicAccessBlock":   "PublicAccessBlock",
	"ownershipControls":   "BucketOwnershipControls",
	"lifecycle":           "BucketLifecycleConfiguration",
	"policy":              "BucketPolicy",
	"versioning":          "BucketVersioning",
	"tagging":             "BucketTagging",
	"cors":                "BucketCors",
	"notification":        "BucketNotificationConfiguration",
	"acl":                 "BucketAcl",
	"website":             "BucketWebsite",
	"logging":             "BucketLogging",
	"replication":         "BucketReplication",
	"accelerate":          "BucketAccelerateConfiguration",
	"object-lock":         "ObjectLockConfiguration",
	"requestPayment":      "BucketRequestPayment",
	"intelligent-tiering": "BucketIntelligentTieringConfiguration",
	"inventory":           "BucketInventoryConfiguration",
	"metrics":             "BucketMetricsConfiguration",
	"analytics":           "BucketAnalyticsConfiguration",
}

var s3ObjectSubresources = map[string]string{
	"tagging":    "ObjectTagging",
	"acl":        "ObjectAcl",
	"retention":  "ObjectRetention",
	"legal-hold": "ObjectLegalHold",
}

var methodVerb = map[string]string{http.MethodGet: "Get", http.MethodPut: "Put", http.MethodDelete: "Delete"}

// s3Operation names an S3 REST call from its method, path and query; path-style and
// virtual-hosted addressing both work.
func s3Operation(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(p, "/")
	if host := r.Host; host != "" {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			h = host
		}
		if net.ParseIP(h) == nil && strings.Contains(h, ".") && (strings.HasSuffix(h, ".localhost") || strings.Contains(h, ".s3.") || strings.Contains(h, ".s3-")) {
			bucket, key = h[:strings.IndexByte(h, '.')], p
		}
	}
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	m := r.Method
	if bucket == "" {
		if m == http.MethodGet {
			return "ListBuckets"
		}
		return "Unknown"
	}
	if key == "" {
		switch m {
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodPost:
			if has("delete") {
				return "DeleteObjects"
			}
			return "PostObject"
		}
		for sub, name := range s3BucketSubresources {
			if has(sub) {
				return methodVerb[m] + name
			}
		}
		switch m {
		case http.MethodPut:
			return "CreateBucket"
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodGet:
			switch {
			case q.Get("list-type") == "2":
				return "ListObjectsV2"
			case has("versions"):
				return "ListObjectVersions"
			case has("uploads"):
				return "ListMultipartUploads"
			case has("location"):
				return "GetBucketLocation"
			}
			return "ListObjects"
		}
		return "Unknown"
	}
	switch m {
	case http.MethodHead:
		return "HeadObject"
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "CreateMultipartUpload"
		case has("uploadId"):
			return "CompleteMultipartUpload"
		case has("restore"):
			return "RestoreObject"
		case has("select"):
			return "SelectObjectContent"
		}
		return "Unknown"
	}
	for sub, name := range s3ObjectSubresources {
		if has(sub) {
			return methodVerb[m] + name
		}
	}
	switch m {
	case http.MethodPut:
		copySource := r.Header.Get("X-Amz-Copy-Source") != ""
		switch {
		case has("uploadId") && copySource:
			return "UploadPartCopy"
		case has("uploadId"):
			return "UploadPart"
		case copySource:
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodGet:
		switch {
		case has("uploadId"):
			return "ListParts"
		case has("attributes"):
			return "GetObjectAttributes"
		}
		return "GetObject"
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return "Unknown"
}

// lambdaFunctionFromPath returns the function of POST
// /2015-03-31/functions/{FunctionName}/invocations, unescaped.
func lambdaFunctionFromPath(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	const prefix = "/2015-03-31/functions/"
	if r.Method != http.MethodPost || !strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, "/invocations") {
		return "", false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/invocations")
	if name == "" || strings.Contains(name, "/") {
		return "", false
	}
	u, err := url.PathUnescape(name)
	if err != nil {
		return "", false
	}
	return u, true
}

func lambdaOperation(r *http.Request) string {
	if _, ok := lambdaFunctionFromPath(r); ok {
		return "Invoke"
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case strings.HasSuffix(p, "/invoke-async"):
		return "InvokeAsync"
	case strings.HasSuffix(p, "/2015-03-31/functions"):
		if r.Method == http.MethodPost {
			return "CreateFunction"
		}
		return "ListFunctions"
	case strings.Contains(p, "/2015-03-31/functions/"):
		switch r.Method {
		case http.MethodGet:
			return "GetFunction"
		case http.MethodDelete:
			return "DeleteFunction"
		}
	}
	return "Unknown"
}

func sesv2Operation(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/v2/email/outbound-emails" && r.Method == http.MethodPost:
		return "SendEmail"
	case p == "/v2/email/outbound-bulk-emails" && r.Method == http.MethodPost:
		return "SendBulkEmail"
	case p == "/v2/email/identities":
		if r.Method == http.MethodPost {
			return "CreateEmailIdentity"
		}
		return "ListEmailIdentities"
	case strings.HasPrefix(p, "/v2/email/identities/") && strings.Count(p, "/") == 4:
		switch r.Method {
		case http.MethodGet:
			return "GetEmailIdentity"
		case http.MethodDelete:
			return "DeleteEmailIdentity"
		}
	case p == "/v2/email/account" && r.Method == http.MethodGet:
		return "GetAccount"
	}
	return "Unknown"
}

// writeFault answers with an AWS-shaped error in the protocol of the service.
func writeFault(w http.ResponseWriter, proto protocol, f *Fault, requestID string) {
	code, msg := f.Code, f.Message
	if code == "" {
		code = http.StatusText(f.Status)
		code = strings.ReplaceAll(code, " ", "")
	}
	if msg == "" {
		msg = "fault injected by the local stack"
	}
	h := w.Header()
	h.Set("X-Amzn-Requestid", requestID)
	switch proto {
	case protoJSON:
		h.Set("Content-Type", "application/x-amz-json-1.0")
		h.Set("X-Amzn-ErrorType", code)
		w.WriteHeader(f.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
	case protoRESTXML:
		h.Set("Content-Type", "application/xml")
		h.Set("X-Amz-Request-Id", requestID)
		w.WriteHeader(f.Status)
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string
			Message   string
			RequestID string `xml:"RequestId"`
		}{Code: code, Message: msg, RequestID: requestID})
	case protoQuery:
		h.Set("Content-Type", "text/xml")
		w.WriteHeader(f.Status)
		typ := "Sender"
		if f.Status >= 500 {
			typ = "Receiver"
		}
		type errBody struct {
			Type    string
			Code    string
			Message string
		}
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName   xml.Name `xml:"ErrorResponse"`
			Error     errBody
			RequestID string `xml:"RequestId"`
		}{Error: errBody{Type: typ, Code: code, Message: msg}, RequestID: requestID})
	default:
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-ErrorType", code)
		w.WriteHeader(f.Status)
		typ := "User"
		if f.Status >= 500 {
			typ = "Service"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"Type": typ, "message": msg})
	}
}

// writeAWSError answers a front door request that the local stack itself refuses.
func writeAWSError(w http.ResponseWriter, proto protocol, status int, code, msg, requestID string) {
	writeFault(w, proto, &Fault{Status: status, Code: code, Message: msg}, requestID)
}
