package localstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestTraceLogIsBounded(t *testing.T) {
	l := traceLog{limit: 3}
	var firsts int
	for i := range 5 {
		if l.add(traceEntry{operation: string(rune('a' + i))}) {
			firsts++
		}
	}
	if len(l.entries) != 3 || l.entries[2].operation != "c" {
		t.Errorf("kept %+v, want the first 3 entries", l.entries)
	}
	if l.dropped != 2 || firsts != 1 {
		t.Errorf("dropped %d, first-dropped reported %d times; want 2 and 1", l.dropped, firsts)
	}
}

func TestTakeInvocationStripsHeader(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set(InvocationHeader, "req-1")
	if got := takeInvocation(r); got != "req-1" {
		t.Errorf("invocation %q, want req-1", got)
	}
	if _, ok := r.Header[http.CanonicalHeaderKey(InvocationHeader)]; ok {
		t.Error("the header is still on the request that goes on to moto")
	}
}

func TestTraceWriterStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
		want  int
	}{
		{"continue then created", func(w http.ResponseWriter) { w.WriteHeader(http.StatusContinue); w.WriteHeader(http.StatusCreated) }, http.StatusCreated},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, http.StatusOK},
		{"nothing", func(http.ResponseWriter) {}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := &statusWriter{ResponseWriter: httptest.NewRecorder()}
			tc.write(tw)
			if tw.status != tc.want {
				t.Errorf("status %d, want %d", tw.status, tc.want)
			}
		})
	}
}

func TestHeldResponseSendsWhatMotoAnswered(t *testing.T) {
	h := &heldResponse{header: http.Header{}}
	h.Header().Set("X-Amz-Request-Id", "m1")
	h.WriteHeader(http.StatusContinue)
	h.WriteHeader(http.StatusAccepted)
	_, _ = h.Write([]byte("body"))
	rec := httptest.NewRecorder()
	h.send(rec)
	if rec.Code != http.StatusAccepted || rec.Body.String() != "body" || rec.Header().Get("X-Amz-Request-Id") != "m1" {
		t.Errorf("sent %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

type captureClient struct{ got *http.Request }

func (c *captureClient) Do(r *http.Request) (*http.Response, error) {
	c.got = r
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
}

func TestInvocationClient(t *testing.T) {
	s := &Stack{}
	next := &captureClient{}
	c := invocationClient{s: s, next: next}
	inCtx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})

	t.Run("names the invocation", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/", nil).WithContext(inCtx)
		if _, err := c.Do(r); err != nil {
			t.Fatal(err)
		}
		if got := next.got.Header.Get(InvocationHeader); got != "req-1" {
			t.Errorf("header %q, want req-1", got)
		}
		if r.Header.Get(InvocationHeader) != "" {
			t.Error("the SDK's request was changed in place")
		}
	})
	t.Run("not from an invocation", func(t *testing.T) {
		if _, err := c.Do(httptest.NewRequest(http.MethodPost, "/", nil)); err != nil {
			t.Fatal(err)
		}
		if _, ok := next.got.Header[http.CanonicalHeaderKey(InvocationHeader)]; ok {
			t.Error("a call outside any invocation carries the header")
		}
	})
	t.Run("killed", func(t *testing.T) {
		inv := s.invocations.begin("req-1", &functionSpec{LogicalID: "ResetFunction"}, func() {})
		s.invocations.mu.Lock()
		inv.killed = true
		s.invocations.mu.Unlock()
		next.got = nil
		_, err := c.Do(httptest.NewRequest(http.MethodPost, "/", nil).WithContext(inCtx))
		if err == nil || next.got != nil {
			t.Fatalf("error %v, sent %v; want a failure that sends nothing", err, next.got)
		}
		// As the SDK's HTTP handler wraps it.
		sendErr := &smithyhttp.RequestSendError{Err: err}
		if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(sendErr); got != aws.FalseTernary {
			t.Errorf("retryable %v, want false so that the SDK fails at once", got)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v is not a cancellation", err)
		}
	})
}
