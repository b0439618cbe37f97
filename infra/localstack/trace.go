package localstack

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// InvocationHeader carries the request id of the Lambda invocation that made an AWS
// call, from the stack's HTTP client to the front door, which removes it before the
// call goes on to moto.
const InvocationHeader = "X-Local-Invocation"

// maxTraceEntries bounds the trace: a long chaos run makes millions of calls, and the
// first ones are the ones a report starts from.
const maxTraceEntries = 2_000_000

// TraceEntry is one AWS call that crossed the front door.
type TraceEntry struct {
	Service   string
	Operation string
	// Function is the logical id of the function whose invocation made the call,
	// empty when the call did not come from a running invocation (the stack itself,
	// a test, moto's Step Functions engine).
	Function string
	// Invocation is the request id of that invocation, empty when not from one.
	Invocation string
	Start, End time.Time
	// Status is the HTTP status answered, 0 when the connection was dropped.
	Status int
}

// traceEntry is a TraceEntry kept small: a trace may hold millions.
type traceEntry struct {
	service, operation, function, invocation string
	start, end                               int64 // Unix nanoseconds
	status                                   int32
}

type traceLog struct {
	mu      sync.Mutex
	entries []traceEntry
	dropped int
	limit   int // 0 means maxTraceEntries
}

// add keeps e unless the log is full; it reports whether e is the first call left out.
func (l *traceLog) add(e traceEntry) (firstDropped bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.limit
	if limit == 0 {
		limit = maxTraceEntries
	}
	if len(l.entries) >= limit {
		l.dropped++
		return l.dropped == 1
	}
	l.entries = append(l.entries, e)
	return false
}

// Trace returns every AWS call that crossed the front door since the start or the last
// ResetTrace or ResetCalls, in the order they ended, up to two million; later calls are
// left out. Calls the stack made to set itself up are included.
func (s *Stack) Trace() []TraceEntry {
	s.trace.mu.Lock()
	defer s.trace.mu.Unlock()
	out := make([]TraceEntry, len(s.trace.entries))
	for i, e := range s.trace.entries {
		out[i] = TraceEntry{
			Service: e.service, Operation: e.operation, Function: e.function, Invocation: e.invocation,
			Start: time.Unix(0, e.start), End: time.Unix(0, e.end), Status: int(e.status),
		}
	}
	return out
}

// ResetTrace empties the trace.
func (s *Stack) ResetTrace() {
	s.trace.mu.Lock()
	defer s.trace.mu.Unlock()
	s.trace.entries = nil
	s.trace.dropped = 0
}

// traceCall starts the trace entry of a front door call; the returned func ends it.
func (s *Stack) traceCall(w *statusWriter, c Call, invocationID string, inv *invocation) func() {
	start := time.Now()
	return func() {
		e := traceEntry{service: c.Service, operation: c.Operation, invocation: invocationID,
			start: start.UnixNano(), end: time.Now().UnixNano(), status: int32(w.status)}
		if inv != nil {
			e.function = inv.fn.LogicalID
			e.invocation = inv.id // shared, where the header's copy is per request
		}
		if s.trace.add(e) {
			s.log.Warn("the trace is full; later calls are counted but not traced", "entries", maxTraceEntries)
		}
	}
}

// invocation is one running invocation of a function, or one an armed crash killed.
type invocation struct {
	id     string
	fn     *functionSpec
	cancel context.CancelFunc
	killed bool // guarded by invocations.mu
	calls  map[*crashRule]int
}

// invocations are the invocations the front door can attribute calls to, by request
// id. Killed ones stay, so that calls made after the kill keep failing.
type invocations struct {
	mu   sync.Mutex
	byID map[string]*invocation
}

func (r *invocations) begin(id string, fn *functionSpec, cancel context.CancelFunc) *invocation {
	inv := &invocation{id: id, fn: fn, cancel: cancel}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[string]*invocation{}
	}
	r.byID[id] = inv
	return inv
}

func (r *invocations) end(inv *invocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !inv.killed {
		delete(r.byID, inv.id)
	}
}

func (r *invocations) get(id string) *invocation {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *invocations) isKilled(inv *invocation) bool {
	if inv == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return inv.killed
}

// takeInvocation reads and removes the invocation header of a front door request;
// moto never sees it.
func takeInvocation(r *http.Request) string {
	id := r.Header.Get(InvocationHeader)
	r.Header.Del(InvocationHeader)
	return id
}

// invocationClient is the HTTP client of the stack's aws.Config. Functions run in this
// process and make their AWS calls with the context of their invocation, which holds
// its lambdacontext; the client names the invocation in InvocationHeader so the front
// door can tell which function made each call.
type invocationClient struct {
	s    *Stack
	next aws.HTTPClient
}

func newInvocationClient(s *Stack) invocationClient {
	// One transport serves every client made from the stack's aws.Config, where each
	// would otherwise have its own; all of them call the one front door.
	next := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.MaxIdleConnsPerHost = 64 })
	return invocationClient{s: s, next: next}
}

func (c invocationClient) Do(r *http.Request) (*http.Response, error) {
	lc, ok := lambdacontext.FromContext(r.Context())
	if !ok {
		return c.next.Do(r)
	}
	if c.s.invocations.isKilled(c.s.invocations.get(lc.AwsRequestID)) {
		// The process of a killed invocation is gone; nothing it would still send
		// reaches AWS. Only a context kept past the kill (context.WithoutCancel) gets
		// here.
		return nil, &killedError{id: lc.AwsRequestID}
	}
	r = r.Clone(r.Context())
	r.Header.Set(InvocationHeader, lc.AwsRequestID)
	return c.next.Do(r)
}

// killedError is what an AWS call of a killed invocation fails with. The SDK does not
// retry it: it reports itself as a cancellation.
type killedError struct{ id string }

func (e *killedError) Error() string {
	return "local stack: invocation " + e.id + " was killed by an armed crash; its process is gone"
}

// CanceledError marks the error as not retryable for the SDK's retryer.
func (e *killedError) CanceledError() bool { return true }

func (e *killedError) Unwrap() error { return context.Canceled }
