package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// function is one Lambda function of the template, running in this process.
type function struct {
	spec    *functionSpec
	handler lambda.Handler
}

// invokeResult is what Lambda answers to a synchronous invoke.
type invokeResult struct {
	Payload []byte
	// Err is set when the function failed; Payload is then its error document.
	Err *messages.InvokeResponse_Error
}

// newRequestID makes a Lambda-style request id (a UUID v4).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// lookupFunction resolves a function name, a full or partial ARN, with or without a
// qualifier, to a local function.
func (s *Stack) lookupFunction(ref string) *function {
	name := ref
	if strings.HasPrefix(name, "arn:") {
		// arn:aws:lambda:region:account:function:name[:qualifier]
		parts := strings.Split(name, ":")
		if len(parts) < 7 || parts[5] != "function" {
			return nil
		}
		name = parts[6]
	} else if parts := strings.Split(name, ":"); len(parts) >= 3 && parts[1] == "function" {
		// account:function:name[:qualifier]
		name = parts[2]
	} else if n, _, ok := strings.Cut(name, ":"); ok {
		// name:qualifier
		name = n
	}
	return s.functions[name]
}

// invoke runs the function's handler the way the Lambda runtime does: a context with
// the invocation's metadata and the function's deadline, panics and errors turned into
// the runtime's error document, and a timeout after Timeout.
func (s *Stack) invoke(ctx context.Context, f *function, requestID string, payload []byte) invokeResult {
	deadline := time.Now().Add(f.spec.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       requestID,
		InvokedFunctionArn: f.spec.ARN,
	})
	// Registered so that the front door can attribute the invocation's AWS calls and an
	// armed crash can kill it.
	inv := s.invocations.begin(requestID, f.spec, cancel)
	defer s.invocations.end(inv)

	done := make(chan invokeResult, 1)
	go func() { done <- callHandler(ctx, f.handler, payload) }()
	start := time.Now()
	var res invokeResult
	returned := false
	select {
	case res = <-done:
		returned = true
	case <-ctx.Done():
		res.Err = &messages.InvokeResponse_Error{
			Type:    "Sandbox.Timedout",
			Message: fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", requestID, f.spec.Timeout.Seconds()),
		}
		if ctx.Err() == context.Canceled {
			res.Err = &messages.InvokeResponse_Error{Type: "Runtime.ExitError", Message: "RequestId: " + requestID + " Error: the local stack is shutting down"}
		}
	}
	if s.invocations.isKilled(inv) {
		res = s.crashResult(inv, done, returned, deadline)
	}
	if res.Err != nil {
		res.Payload, _ = json.Marshal(res.Err)
		s.log.Warn("function failed", "function", f.spec.Name, "requestId", requestID, "errorType", res.Err.Type, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		s.log.Debug("function done", "function", f.spec.Name, "requestId", requestID, "duration", time.Since(start).Round(time.Millisecond))
	}
	return res
}

// callHandler calls h, turning a returned error or a panic into the error document the
// aws-lambda-go runtime would report.
func callHandler(ctx context.Context, h lambda.Handler, payload []byte) (res invokeResult) {
	defer func() {
		if v := recover(); v != nil {
			if ive, ok := v.(messages.InvokeResponse_Error); ok {
				res = invokeResult{Err: &ive}
				return
			}
			res = invokeResult{Err: &messages.InvokeResponse_Error{
				Message:    fmt.Sprintf("%v", v),
				Type:       errorType(v),
				StackTrace: panicStack(),
			}}
		}
	}()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		if ive, ok := err.(messages.InvokeResponse_Error); ok {
			return invokeResult{Err: &ive}
		}
		return invokeResult{Err: &messages.InvokeResponse_Error{Message: err.Error(), Type: errorType(err)}}
	}
	if out == nil {
		out = []byte("null")
	}
	return invokeResult{Payload: out}
}

// errorType is the name of v's type without a pointer, as aws-lambda-go reports it.
func errorType(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Ptr {
		return t.Elem().Name()
	}
	return t.Name()
}

// serveInvoke answers POST /2015-03-31/functions/{name}/invocations.
func (s *Stack) serveInvoke(w http.ResponseWriter, r *http.Request, ref, requestID string) {
	if !s.functionsBuilt.Load() {
		writeAWSError(w, protoRESTJSON, http.StatusServiceUnavailable, "ServiceException", "the local stack is still starting", requestID)
		return
	}
	f := s.lookupFunction(ref)
	if f == nil {
		writeAWSError(w, protoRESTJSON, http.StatusNotFound, "ResourceNotFoundException",
			"Function not found: "+FunctionARN(ref), requestID)
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, 6<<20+1))
	if err != nil {
		writeAWSError(w, protoRESTJSON, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body", requestID)
		return
	}
	if len(payload) > 6<<20 {
		writeAWSError(w, protoRESTJSON, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "Request must be smaller than 6291456 bytes for the InvokeFunction operation", requestID)
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		writeAWSError(w, protoRESTJSON, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json", requestID)
		return
	}
	h := w.Header()
	h.Set("X-Amzn-Requestid", requestID)
	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "Event":
		s.async.Add(1)
		go func() {
			defer s.async.Done()
			s.invoke(s.baseCtx, f, requestID, payload)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res := s.invoke(s.baseCtx, f, requestID, payload)
	h.Set("Content-Type", "application/json")
	h.Set("X-Amz-Executed-Version", "$LATEST")
	if res.Err != nil {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
}

// panicStack lists the frames of a recovered panic, skipping the runtime's own.
func panicStack() []*messages.InvokeResponse_Error_StackFrame {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(4, pcs) // runtime.Callers, panicStack, the deferred func
	frames := runtime.CallersFrames(pcs[:n])
	var out []*messages.InvokeResponse_Error_StackFrame
	for {
		fr, more := frames.Next()
		label := fr.Function[strings.LastIndex(fr.Function, "/")+1:]
		out = append(out, &messages.InvokeResponse_Error_StackFrame{
			Path:  fr.File,
			Line:  int32(fr.Line),
			Label: label[strings.Index(label, ".")+1:],
		})
		if !more || strings.HasSuffix(fr.Function, "callHandler") {
			break
		}
	}
	return out
}

// newFunctionLogger logs as a function in Lambda does with JSON logging on: one JSON
// object a line, with the invocation's request id.
func newFunctionLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stdout
	}
	return slog.New(invocationHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: lambdacontext.ReplaceAttr})})
}

// invocationHandler adds the request id of the invocation a record was logged in.
type invocationHandler struct{ slog.Handler }

func (h invocationHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h invocationHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return invocationHandler{h.Handler.WithAttrs(attrs)}
}

func (h invocationHandler) WithGroup(name string) slog.Handler {
	return invocationHandler{h.Handler.WithGroup(name)}
}
