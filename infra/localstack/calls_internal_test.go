package localstack

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func signed(r *http.Request, service string) *http.Request {
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/"+service+"/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
	return r
}

func TestClassify(t *testing.T) {
	req := func(method, target, body string) *http.Request {
		return httptest.NewRequest(method, target, strings.NewReader(body))
	}
	withHeader := func(r *http.Request, k, v string) *http.Request { r.Header.Set(k, v); return r }
	form := func(r *http.Request) *http.Request {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		return r
	}
	tests := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"dynamodb", withHeader(signed(req("POST", "/", "{}"), "dynamodb"), "X-Amz-Target", "DynamoDB_20120810.Query"), "dynamodb.Query"},
		{"states", withHeader(signed(req("POST", "/", "{}"), "states"), "X-Amz-Target", "AWSStepFunctions.StartExecution"), "states.StartExecution"},
		{"lambda invoke", signed(req("POST", "/2015-03-31/functions/ResetFunction/invocations", "{}"), "lambda"), "lambda.Invoke"},
		{"lambda invoke by escaped ARN", signed(req("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3AX/invocations", "{}"), "lambda"), "lambda.Invoke"},
		{"s3 put object", signed(req("PUT", "/b/k/x.json", "x"), "s3"), "s3.PutObject"},
		{"s3 get object", signed(req("GET", "/b/k", ""), "s3"), "s3.GetObject"},
		{"s3 head object", signed(req("HEAD", "/b/k", ""), "s3"), "s3.HeadObject"},
		{"s3 delete object", signed(req("DELETE", "/b/k", ""), "s3"), "s3.DeleteObject"},
		{"s3 delete objects", signed(req("POST", "/b?delete", "<Delete/>"), "s3"), "s3.DeleteObjects"},
		{"s3 list v2", signed(req("GET", "/b?list-type=2&prefix=a", ""), "s3"), "s3.ListObjectsV2"},
		{"s3 list v1", signed(req("GET", "/b?prefix=a", ""), "s3"), "s3.ListObjects"},
		{"s3 create bucket", signed(req("PUT", "/b", ""), "s3"), "s3.CreateBucket"},
		{"s3 head bucket", signed(req("HEAD", "/b", ""), "s3"), "s3.HeadBucket"},
		{"s3 bucket encryption", signed(req("PUT", "/b?encryption", ""), "s3"), "s3.PutBucketEncryption"},
		{"s3 public access block", signed(req("GET", "/b?publicAccessBlock=", ""), "s3"), "s3.GetPublicAccessBlock"},
		{"s3 copy", withHeader(signed(req("PUT", "/b/k2", ""), "s3"), "X-Amz-Copy-Source", "/b/k"), "s3.CopyObject"},
		{"s3 multipart", signed(req("POST", "/b/k?uploads", ""), "s3"), "s3.CreateMultipartUpload"},
		{"s3 upload part", signed(req("PUT", "/b/k?partNumber=1&uploadId=u", ""), "s3"), "s3.UploadPart"},
		{"s3 list buckets", signed(req("GET", "/", ""), "s3"), "s3.ListBuckets"},
		{"s3 virtual host", withHost(signed(req("GET", "/k", ""), "s3"), "b.s3.amazonaws.com"), "s3.GetObject"},
		{"s3 presigned", req("GET", "/b/k?X-Amz-Credential=test%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x", ""), "s3.GetObject"},
		{"sesv2 send", signed(req("POST", "/v2/email/outbound-emails", "{}"), "ses"), "ses.SendEmail"},
		{"sesv2 create identity", signed(req("POST", "/v2/email/identities", "{}"), "ses"), "ses.CreateEmailIdentity"},
		{"ses v1 query", form(signed(req("POST", "/", "Action=SendEmail&Version=2010-12-01"), "ses")), "ses.SendEmail"},
		{"iam query", form(signed(req("POST", "/", "Action=CreateRole&RoleName=x"), "iam")), "iam.CreateRole"},
		{"query in URL", signed(req("GET", "/?Action=GetCallerIdentity", ""), "sts"), "sts.GetCallerIdentity"},
		{"unsigned", req("GET", "/whatever", ""), "unknown.Unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.req.Body != nil {
				b, _ := io.ReadAll(tt.req.Body)
				body = string(b)
				tt.req.Body = io.NopCloser(strings.NewReader(body))
			}
			c, _ := classify(tt.req)
			if got := c.String(); got != tt.want {
				t.Errorf("classify = %s, want %s", got, tt.want)
			}
			rest, _ := io.ReadAll(tt.req.Body)
			if string(rest) != body {
				t.Errorf("body after classify %q, want %q untouched", rest, body)
			}
		})
	}
}

func withHost(r *http.Request, host string) *http.Request { r.Host = host; return r }

func TestRouteSpecificity(t *testing.T) {
	mk := func(method, path string) *route {
		r, err := newRoute(method, path)
		if err != nil {
			t.Fatal(err)
		}
		r.Function = method + " " + path
		return r
	}
	s := &Stack{routes: []*route{
		mk("ANY", "$default"),
		mk("ANY", "/v1/{proxy+}"),
		mk("GET", "/v1/{proxy+}"),
		mk("GET", "/v1/domains/{domain}/users"),
		mk("GET", "/v1/domains/{domain}/users/{ext}"),
		mk("POST", "/v1/setup"),
		mk("ANY", "/v1/domains/acme/users"),
	}}
	tests := []struct {
		method, path, want string
		params             map[string]string
	}{
		{"GET", "/v1/domains/x/users", "GET /v1/domains/{domain}/users", map[string]string{"domain": "x"}},
		{"GET", "/v1/domains/acme/users", "ANY /v1/domains/acme/users", nil},
		{"GET", "/v1/domains/x/users/1002", "GET /v1/domains/{domain}/users/{ext}", map[string]string{"domain": "x", "ext": "1002"}},
		{"POST", "/v1/setup", "POST /v1/setup", nil},
		{"GET", "/v1/setup", "GET /v1/{proxy+}", map[string]string{"proxy": "setup"}},
		{"DELETE", "/v1/a/b/c", "ANY /v1/{proxy+}", map[string]string{"proxy": "a/b/c"}},
		{"GET", "/v1", "ANY $default", nil},
		{"GET", "/other", "ANY $default", nil},
	}
	for _, tt := range tests {
		r, params := s.findRoute(tt.method, tt.path)
		if r == nil || r.Function != tt.want {
			t.Errorf("%s %s → %v, want %s", tt.method, tt.path, r, tt.want)
			continue
		}
		if len(params) != len(tt.params) {
			t.Errorf("%s %s params %v, want %v", tt.method, tt.path, params, tt.params)
		}
		for k, v := range tt.params {
			if params[k] != v {
				t.Errorf("%s %s param %s = %q, want %q", tt.method, tt.path, k, params[k], v)
			}
		}
	}
}

func TestClaimString(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"s", "s"},
		{[]any{"a", "b"}, "[a b]"},
		{true, "true"},
		{float64(1.5), "1.5"},
	}
	for _, tt := range tests {
		if got := claimString(tt.in); got != tt.want {
			t.Errorf("claimString(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
