package localstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/config"
)

// stack is the one local stack of this test binary.
var stack *localstack.Stack

// faults is the stack's fault injector; tests set and clear its rule.
var faults = &switchableFaults{}

// fakes record what the test functions saw.
var fakes = &recorder{}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	level := slog.LevelWarn
	if os.Getenv("LOCALSTACK_DEBUG") != "" {
		level = slog.LevelDebug
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	began := time.Now()
	stack, err = localstack.Start(ctx, localstack.Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     fakeFunctions(),
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Faults:        faults,
		// Schedules fire only when a test asks, through FireSchedules.
		ScheduleTick: -1,
		Seed: func(ctx context.Context, cfg aws.Config, res localstack.Resources) error {
			fakes.seeded.Store(res.Tables["Table"])
			return nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local stack:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "local stack started in %s\n", time.Since(began).Round(time.Millisecond))
	defer stack.Close()
	return m.Run()
}

type switchableFaults struct {
	mu   sync.Mutex
	rule func(localstack.Call) *localstack.Fault
}

func (f *switchableFaults) Inject(c localstack.Call) *localstack.Fault {
	f.mu.Lock()
	rule := f.rule
	f.mu.Unlock()
	if rule == nil {
		return nil
	}
	return rule(c)
}

// set installs rule until the test ends.
func (f *switchableFaults) set(t *testing.T, rule func(localstack.Call) *localstack.Fault) {
	t.Helper()
	f.mu.Lock()
	f.rule = rule
	f.mu.Unlock()
	t.Cleanup(func() {
		f.mu.Lock()
		f.rule = nil
		f.mu.Unlock()
	})
}

type invocation struct {
	Function  string
	RequestID string
	ARN       string
	Deadline  time.Duration
	Env       map[string]string
	Payload   json.RawMessage
}

type recorder struct {
	mu     sync.Mutex
	calls  []invocation
	seeded syncValue
}

type syncValue struct {
	mu sync.Mutex
	v  string
}

func (s *syncValue) Store(v string) { s.mu.Lock(); s.v = v; s.mu.Unlock() }
func (s *syncValue) Load() string   { s.mu.Lock(); defer s.mu.Unlock(); return s.v }

func (r *recorder) add(ctx context.Context, fn string, env map[string]string, payload []byte) {
	inv := invocation{Function: fn, Env: env, Payload: append(json.RawMessage(nil), payload...)}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		inv.RequestID, inv.ARN = lc.AwsRequestID, lc.InvokedFunctionArn
	}
	if d, ok := ctx.Deadline(); ok {
		inv.Deadline = time.Until(d)
	}
	r.mu.Lock()
	r.calls = append(r.calls, inv)
	r.mu.Unlock()
}

// of returns the invocations of one function whose payload satisfies keep.
func (r *recorder) of(fn string, keep func(json.RawMessage) bool) []invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []invocation
	for _, c := range r.calls {
		if c.Function == fn && (keep == nil || keep(c.Payload)) {
			out = append(out, c)
		}
	}
	return out
}

func (r *recorder) count(fn string) int { return len(r.of(fn, nil)) }

// handlerFunc adapts a func to lambda.Handler.
type handlerFunc func(ctx context.Context, payload []byte) ([]byte, error)

func (f handlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// TestError is an error type the state machine and the SDK can tell apart by name.
type TestError struct{ Msg string }

func (e *TestError) Error() string { return e.Msg }

// fakeFunctions stand in for internal/app's builders: they record what they are called
// with and answer from it.
func fakeFunctions() map[string]app.Function {
	envOf := func(lookup config.Lookup) map[string]string {
		env := map[string]string{}
		for _, k := range []string{"TABLE_NAME", "BUCKET_NAME", "STATE_MACHINE_ARN", "BATCH_SIZE", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL",
			"AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"} {
			if v, ok := lookup(k); ok {
				env[k] = v
			}
		}
		return env
	}
	return map[string]app.Function{
		"api": func(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
			env := envOf(lookup)
			return lambda.NewHandler(func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
				raw, _ := json.Marshal(ev)
				fakes.add(ctx, "api", env, raw)
				if ev.RawPath == "/v1/fail" {
					return events.APIGatewayV2HTTPResponse{}, errors.New("boom")
				}
				body, _ := json.Marshal(ev)
				return events.APIGatewayV2HTTPResponse{
					StatusCode: 200,
					Headers:    map[string]string{"Content-Type": "application/json", "X-Fake": "api"},
					Cookies:    []string{"a=1"},
					Body:       string(body),
				}, nil
			}), nil
		},
		"reset": func(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
			env := envOf(lookup)
			return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
				fakes.add(ctx, "reset", env, payload)
				var in struct {
					Fail  string `json:"fail"`
					Panic string `json:"panic"`
					Sleep string `json:"sleep"`
					Batch struct {
						Users []string `json:"users"`
					} `json:"batch"`
				}
				_ = json.Unmarshal(payload, &in)
				switch {
				case in.Fail != "":
					return nil, &TestError{Msg: in.Fail}
				case in.Panic != "":
					panic(in.Panic)
				}
				return json.Marshal(map[string]any{"done": len(in.Batch.Users), "failed": 0, "echo": json.RawMessage(payload)})
			}), nil
		},
		"finalize": func(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
			env := envOf(lookup)
			return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
				fakes.add(ctx, "finalize", env, payload)
				return []byte(`{"status":"done"}`), nil
			}), nil
		},
		"offboard": func(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
			env := envOf(lookup)
			return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
				fakes.add(ctx, "offboard", env, payload)
				return []byte("null"), nil
			}), nil
		},
		"mailer": func(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
			env := envOf(lookup)
			return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
				fakes.add(ctx, "mailer", env, payload)
				return []byte("null"), nil
			}), nil
		},
	}
}
