package localstack

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// faultKinds are the retryable errors each service answers when it is overloaded, as
// the service sends them: the SDKs classify them by status and code (throttle or
// transient), so a fault of one of these kinds exercises the same retry paths as the
// real thing. Keys are signing names, as in Call.Service.
var faultKinds = map[string][]Fault{
	"dynamodb": {
		{Status: http.StatusBadRequest, Code: "ProvisionedThroughputExceededException",
			Message: "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."},
		{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate of requests exceeds the allowed throughput."},
	},
	"s3": {
		{Status: http.StatusServiceUnavailable, Code: "SlowDown", Message: "Please reduce your request rate."},
		{Status: http.StatusInternalServerError, Code: "InternalError", Message: "We encountered an internal error. Please try again."},
	},
	"lambda": {
		{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException", Message: "Rate Exceeded."},
		{Status: http.StatusInternalServerError, Code: "ServiceException", Message: "An unknown error occurred while invoking the function. Please try again."},
	},
	"ses": {
		{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException", Message: "Too many requests have been made to the operation."},
	},
	"sqs": {
		// SQS models RequestThrottled with status 403; ThrottlingException is the
		// common AWS throttling error it also answers.
		{Status: http.StatusForbidden, Code: "RequestThrottled", Message: "Request is throttled."},
		{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate exceeded"},
	},
	"states": {
		{Status: http.StatusBadRequest, Code: "ThrottlingException", Message: "Rate exceeded"},
	},
}

// RandomFaults is a FaultInjector that fails a share of each service's calls with the
// retryable errors the service really answers when overloaded (DynamoDB throttling, S3
// SlowDown, Lambda TooManyRequestsException and ServiceException, SES v2
// TooManyRequestsException, SQS RequestThrottled and ThrottlingException, Step
// Functions ThrottlingException) and may add latency to every call. Make one with
// ParseFaults. It is safe for concurrent use.
type RandomFaults struct {
	rates   map[string]float64 // by service
	latency time.Duration
	seed    uint64

	mu       sync.Mutex
	rng      *mathrand.Rand
	injected map[string]int // by "service.Code"
}

// ParseFaults reads a fault spec: comma-separated name=value items where the name is a
// service (dynamodb, s3, lambda, ses, sqs, states) and the value the share of its calls
// to fail, from 0 to 1; latency=<Go duration> adds that delay to every call; seed=<N>
// makes the choice of failed calls repeatable. For example
// "dynamodb=0.10,s3=0.05,lambda=0.05,ses=0.10,sqs=0.05,latency=20ms,seed=7".
//
// A spec that is empty or only blanks gives an injector that does nothing. Without a
// seed one is chosen at random; String reports it, so a run can be repeated. It fails
// on an item that is not name=value, an unknown name, a name given twice, a rate that
// is not a number from 0 to 1, a latency that is not a non-negative duration, or a
// seed that is not an unsigned integer.
func ParseFaults(spec string) (*RandomFaults, error) {
	f := &RandomFaults{rates: map[string]float64{}}
	seen := map[string]bool{}
	seeded := false
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("fault spec item %q: want name=value, e.g. dynamodb=0.1 or latency=20ms", item)
		}
		if seen[name] {
			return nil, fmt.Errorf("fault spec: %s is given twice", name)
		}
		seen[name] = true
		switch name {
		case "latency":
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("fault spec: latency %q is not a non-negative Go duration such as 20ms", value)
			}
			f.latency = d
		case "seed":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("fault spec: seed %q is not an unsigned integer", value)
			}
			f.seed, seeded = n, true
		default:
			if _, ok := faultKinds[name]; !ok {
				return nil, fmt.Errorf("fault spec: unknown name %q; want one of %s, latency or seed", name, strings.Join(faultServices(), ", "))
			}
			r, err := strconv.ParseFloat(value, 64)
			if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
				return nil, fmt.Errorf("fault spec: %s rate %q is not a number from 0 to 1", name, value)
			}
			f.rates[name] = r
		}
	}
	if !seeded {
		var b [8]byte
		_, _ = rand.Read(b[:])
		f.seed = binary.LittleEndian.Uint64(b[:])
	}
	f.rng = mathrand.New(mathrand.NewPCG(f.seed, f.seed^0x9e3779b97f4a7c15))
	return f, nil
}

// faultServices lists the services a spec may name, sorted.
func faultServices() []string {
	out := make([]string, 0, len(faultKinds))
	for s := range faultKinds {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Inject fails the call at its service's rate with one of the service's kinds of
// error, picked at random, and delays it by the spec's latency.
func (f *RandomFaults) Inject(c Call) *Fault {
	rate := f.rates[c.Service]
	if rate == 0 && f.latency == 0 {
		return nil
	}
	var out Fault
	if rate > 0 {
		f.mu.Lock()
		if f.rng.Float64() < rate {
			kinds := faultKinds[c.Service]
			out = kinds[f.rng.IntN(len(kinds))]
			if f.injected == nil {
				f.injected = map[string]int{}
			}
			f.injected[c.Service+"."+out.Code]++
		}
		f.mu.Unlock()
	}
	out.Delay = f.latency
	if out.Status == 0 && out.Delay == 0 {
		return nil
	}
	return &out
}

// Injected returns how many errors it injected, keyed "service.Code"
// (dynamodb.ThrottlingException, s3.SlowDown…). Latency is not counted.
func (f *RandomFaults) Injected() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.injected)
}

// Latency is the delay added to every call.
func (f *RandomFaults) Latency() time.Duration { return f.latency }

// Seed is the seed of the random choices, given or chosen.
func (f *RandomFaults) Seed() uint64 { return f.seed }

// String is the spec in a canonical form, services sorted and the seed included:
// ParseFaults of it gives an injector that makes the same choices.
func (f *RandomFaults) String() string {
	var parts []string
	for _, s := range faultServices() {
		if r, ok := f.rates[s]; ok {
			parts = append(parts, s+"="+strconv.FormatFloat(r, 'g', -1, 64))
		}
	}
	if f.latency > 0 {
		parts = append(parts, "latency="+f.latency.String())
	}
	parts = append(parts, "seed="+strconv.FormatUint(f.seed, 10))
	return strings.Join(parts, ",")
}

// faultSlot holds the stack's current injector; a pointer to it can be swapped
// atomically even when the injector is nil.
type faultSlot struct{ injector FaultInjector }

// SetFaults makes f the injector of every later AWS call crossing the front door,
// replacing Options.Faults or the one set before; nil turns faults off. Calls under
// way keep the injector they started with. f is asked only once the stack is ready,
// and never about the calls moto's Step Functions engine makes for its own bookkeeping
// (its Lambda invocations are asked about).
func (s *Stack) SetFaults(f FaultInjector) {
	s.faults.Store(&faultSlot{injector: f})
}

// Faults returns the current fault injector, nil when faults are off.
func (s *Stack) Faults() FaultInjector {
	if slot := s.faults.Load(); slot != nil {
		return slot.injector
	}
	return nil
}

// fault asks the current injector about c and waits out the delay it asks for. It
// returns the fault to answer with, or nil to go on with the call. Nothing is injected
// before the stack is ready, so the stack's own resource creation and Seed never fail
// or wait because of it.
func (s *Stack) fault(c Call) *Fault {
	if !s.ready.Load() {
		return nil
	}
	inj := s.Faults()
	if inj == nil {
		return nil
	}
	f := inj.Inject(c)
	if f == nil {
		return nil
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-s.baseCtx.Done():
			t.Stop()
		}
	}
	if f.Status == 0 {
		return nil
	}
	return f
}

// frontDoorFault is fault for a call crossing the front door. The calls moto's Step
// Functions engine makes for its own bookkeeping, such as reading a Distributed Map's
// S3 ItemReader, are never faulted: Step Functions retries those inside the service,
// while moto's engine makes each call once (boto3 with retries off), so a fault there
// would fail executions in a way AWS does not. The engine's Lambda invocations are
// faulted: a state machine's Retry names those errors (Lambda.TooManyRequestsException,
// Lambda.ServiceException). The engine is told apart by boto3's User-Agent; the AWS
// CLI's starts with aws-cli/ instead.
func (s *Stack) frontDoorFault(c Call, r *http.Request) *Fault {
	if c.Service != "lambda" && strings.HasPrefix(r.Header.Get("User-Agent"), "Boto3/") {
		return nil
	}
	return s.fault(c)
}

// faultsStatus is the body of GET /_local/faults.
type faultsStatus struct {
	// Active is whether an injector is set.
	Active bool `json:"active"`
	// Spec is the active spec in canonical form; empty when faults are off or the
	// injector was not made from a spec.
	Spec string `json:"spec"`
	// Injected counts the injected errors by "service.Code", when the injector counts.
	Injected map[string]int `json:"injected"`
	// Crashes is how many invocations an armed crash has killed.
	Crashes int `json:"crashes"`
}

// serveFaults answers /_local/faults: GET reports the active spec and what it
// injected; POST {"spec":"dynamodb=0.1,…"} sets a new spec, an empty one turning
// faults off.
func (s *Stack) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var body struct {
			Spec *string `json:"spec"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Spec == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want a JSON body {"spec":"dynamodb=0.1,latency=20ms"}; an empty spec turns faults off`})
			return
		}
		if strings.TrimSpace(*body.Spec) == "" {
			s.SetFaults(nil)
			s.log.Info("faults off")
			break
		}
		f, err := ParseFaults(*body.Spec)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetFaults(f)
		s.log.Info("faults on", "spec", f.String())
	default:
		w.Header().Set("Allow", "GET, POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	st := faultsStatus{Injected: map[string]int{}, Crashes: len(s.Crashes())}
	if inj := s.Faults(); inj != nil {
		st.Active = true
		if rf, ok := inj.(*RandomFaults); ok {
			st.Spec = rf.String()
		}
		if c, ok := inj.(interface{ Injected() map[string]int }); ok {
			st.Injected = c.Injected()
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
