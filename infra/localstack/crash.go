package localstack

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
)

// Crash arms the death of a function's process part way through an invocation, as
// when Lambda kills it (out of memory, a fatal error): after the AfterCalls-th call
// matching Operation that one invocation of Function makes has reached moto, and so
// has had its effect, the invocation is killed. Its context is cancelled, every later
// AWS call it makes fails at once without reaching AWS, the answer to the call it died
// on is lost, and its Invoke answers as Lambda does when a function's process exits
// mid-invocation: status 200, X-Amz-Function-Error: Unhandled and the error document
// {"errorType":"Runtime.ExitError","errorMessage":"RequestId: … Error: Runtime exited
// with error: signal: killed"}, whatever the handler returns afterwards. Step Functions'
// lambda:invoke integration reports that as the error Runtime.ExitError.
type Crash struct {
	// Function is the function's logical id (ResetFunction), name or CodeUri folder
	// (reset).
	Function string
	// Operation is the call to count, "service.Operation" as in Calls
	// (dynamodb.BatchWriteItem); empty counts every AWS call of the invocation.
	Operation string
	// AfterCalls is how many counted calls one invocation makes before it dies; at
	// least 1.
	AfterCalls int
	// Times is how many invocations die before the crash disarms itself; 0 means 1.
	Times int
}

// Crashed is one invocation an armed crash killed.
type Crashed struct {
	// Function is the function's logical id.
	Function string
	// Invocation is the request id of the killed invocation.
	Invocation string
	// Operation is the call it died after, "service.Operation".
	Operation string
	// Calls is how many counted calls it had made, the last included.
	Calls int
	At    time.Time
}

// crashRule is an armed Crash.
type crashRule struct {
	Crash
	fn        *functionSpec
	remaining int
}

type crashes struct {
	mu      sync.Mutex
	rules   []*crashRule
	crashed []Crashed
}

// ArmCrash arms c: the next c.Times invocations of c.Function that make c.AfterCalls
// calls matching c.Operation are killed after the last of them. Crashes armed before
// stay armed. It fails when the template has no such function, the operation is not
// "service.Operation", AfterCalls is below 1 or Times is negative.
func (s *Stack) ArmCrash(c Crash) error {
	var fn *functionSpec
	for _, spec := range s.plan.functions {
		if c.Function != "" && (c.Function == spec.LogicalID || c.Function == spec.Name || c.Function == spec.Folder) {
			fn = spec
			break
		}
	}
	if fn == nil {
		return fmt.Errorf("arm crash: the template has no function %q (give its logical id, name or CodeUri folder)", c.Function)
	}
	if svc, op, ok := strings.Cut(c.Operation, "."); c.Operation != "" && (!ok || svc == "" || op == "") {
		return fmt.Errorf("arm crash: operation %q is not service.Operation, e.g. dynamodb.BatchWriteItem", c.Operation)
	}
	if c.AfterCalls < 1 {
		return fmt.Errorf("arm crash: AfterCalls is %d, want at least 1", c.AfterCalls)
	}
	if c.Times < 0 {
		return fmt.Errorf("arm crash: Times is %d, want 0 (once) or more", c.Times)
	}
	if c.Times == 0 {
		c.Times = 1
	}
	s.crash.mu.Lock()
	s.crash.rules = append(s.crash.rules, &crashRule{Crash: c, fn: fn, remaining: c.Times})
	s.crash.mu.Unlock()
	s.log.Info("crash armed", "function", fn.LogicalID, "operation", c.Operation, "afterCalls", c.AfterCalls, "times", c.Times)
	return nil
}

// DisarmCrashes disarms every armed crash. Invocations already killed stay dead.
func (s *Stack) DisarmCrashes() {
	s.crash.mu.Lock()
	s.crash.rules = nil
	s.crash.mu.Unlock()
}

// Crashes returns the invocations armed crashes have killed, in the order they died.
func (s *Stack) Crashes() []Crashed {
	s.crash.mu.Lock()
	defer s.crash.mu.Unlock()
	return slices.Clone(s.crash.crashed)
}

// watched tells whether a crash is armed for inv's function, so that the answers to
// its calls are held until it is known whether it still lives to read them.
func (s *Stack) watched(inv *invocation) bool {
	s.crash.mu.Lock()
	defer s.crash.mu.Unlock()
	for _, r := range s.crash.rules {
		if r.remaining > 0 && r.fn == inv.fn {
			return true
		}
	}
	return false
}

// countCall counts a call of inv about to be forwarded against every armed crash of
// its function and returns the crash this call completes, if any, claiming one of its
// Times.
func (s *Stack) countCall(inv *invocation, c Call) *crashRule {
	s.crash.mu.Lock()
	defer s.crash.mu.Unlock()
	var fired *crashRule
	for _, r := range s.crash.rules {
		if r.remaining == 0 || r.fn != inv.fn || (r.Operation != "" && r.Operation != c.String()) {
			continue
		}
		if inv.calls == nil {
			inv.calls = map[*crashRule]int{}
		}
		inv.calls[r]++
		if fired == nil && inv.calls[r] == r.AfterCalls {
			r.remaining--
			fired = r
		}
	}
	return fired
}

// kill ends inv as a crash does: it is marked killed, so that its later calls fail,
// and its context is cancelled, so that the handler stops.
func (s *Stack) kill(inv *invocation, r *crashRule, c Call) {
	s.invocations.mu.Lock()
	already := inv.killed
	inv.killed = true
	s.invocations.mu.Unlock()
	if already {
		return
	}
	s.crash.mu.Lock()
	s.crash.crashed = append(s.crash.crashed, Crashed{
		Function: inv.fn.LogicalID, Invocation: inv.id, Operation: c.String(), Calls: r.AfterCalls, At: time.Now(),
	})
	s.crash.mu.Unlock()
	s.log.Warn("crash injected: invocation killed", "function", inv.fn.LogicalID, "requestId", inv.id, "after", c.String(), "calls", r.AfterCalls)
	inv.cancel()
}

// forward proxies a call to moto. A call of an invocation that an armed crash
// watches has moto's answer held back: when the invocation dies meanwhile, by this
// call or another, the answer is lost with its process and the connection is dropped.
func (s *Stack) forward(w http.ResponseWriter, r *http.Request, c Call, inv *invocation) {
	if inv == nil || !s.watched(inv) {
		s.proxy.ServeHTTP(w, r)
		return
	}
	fired := s.countCall(inv, c)
	held := &heldResponse{header: http.Header{}}
	s.proxy.ServeHTTP(held, r)
	if fired != nil {
		s.kill(inv, fired, c)
	}
	if s.invocations.isKilled(inv) {
		dropConnection(w)
		return
	}
	held.send(w)
}

// crashResult is the answer of a killed invocation. Its handler is waited for, up to
// the function's deadline, so that nothing of it runs on unnoticed; received tells
// that it has already returned.
func (s *Stack) crashResult(inv *invocation, done <-chan invokeResult, received bool, deadline time.Time) invokeResult {
	if !received {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-done:
		case <-t.C:
			s.log.Warn("the handler of a killed invocation still runs at its deadline", "function", inv.fn.LogicalID, "requestId", inv.id)
		case <-s.baseCtx.Done():
		}
		t.Stop()
	}
	return invokeResult{Err: &messages.InvokeResponse_Error{
		Type:    "Runtime.ExitError",
		Message: "RequestId: " + inv.id + " Error: Runtime exited with error: signal: killed",
	}}
}

// dropConnection closes the client's connection without an answer, as a dead process
// leaves it.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not HTTP/1: the server resets the stream on this panic, without logging it.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// heldResponse keeps moto's answer until it may be sent.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(code int) {
	// 1xx answers are moto's to the proxy; the client got its own from the server.
	if h.status == 0 && code >= 200 {
		h.status = code
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// Flush does nothing: the answer is sent whole, or not at all.
func (h *heldResponse) Flush() {}

func (h *heldResponse) send(w http.ResponseWriter) {
	dst := w.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	if h.status == 0 {
		h.status = http.StatusOK
	}
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}
