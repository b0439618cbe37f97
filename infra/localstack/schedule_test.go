package localstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/config"
)

// offboardResource is the scheduled function templateWithSchedule adds to a copy of a
// template that has none.
const offboardResource = `  OffboardFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: go1.x}
    Properties:
      CodeUri: functions/offboard/
      Events:
        EveryMinute:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Description: Starts the offboardings that are due.
`

// templateWithSchedule copies the repository's template and state machines to a
// temporary directory, with the offboard function added when the template has none.
func templateWithSchedule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := string(b)
	if !strings.Contains(tmpl, "functions/offboard/") {
		if !strings.Contains(tmpl, "\nResources:\n") {
			t.Fatal("template has no Resources section")
		}
		tmpl = strings.Replace(tmpl, "\nResources:\n", "\nResources:\n"+offboardResource, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "statemachine"), os.DirFS("../../statemachine")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scheduled is the offboard function of a stack of its own: it records its
// invocations and fails or panics when told to.
type scheduled struct {
	rec  recorder
	mode atomic.Value // "", "fail" or "panic"
}

func (f *scheduled) builder(ctx context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
	return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		f.rec.add(ctx, "offboard", nil, payload)
		switch mode, _ := f.mode.Load().(string); mode {
		case "fail":
			return nil, &TestError{Msg: "offboarding failed"}
		case "panic":
			panic("offboarding panicked")
		}
		return []byte("null"), nil
	}), nil
}

func (f *scheduled) setMode(t *testing.T, mode string) {
	t.Helper()
	f.mode.Store(mode)
	t.Cleanup(func() { f.mode.Store("") })
}

// events returns the scheduled events the function received, decoded.
func (f *scheduled) events(t *testing.T) []events.CloudWatchEvent {
	t.Helper()
	var out []events.CloudWatchEvent
	for _, inv := range f.rec.of("offboard", nil) {
		var ev events.CloudWatchEvent
		if err := json.Unmarshal(inv.Payload, &ev); err != nil {
			t.Fatalf("payload %s: %v", inv.Payload, err)
		}
		out = append(out, ev)
	}
	return out
}

// scheduleStack starts a stack of its own whose offboard function is fn.
func scheduleStack(t *testing.T, tick time.Duration, fn *scheduled, faults localstack.FaultInjector) *localstack.Stack {
	t.Helper()
	functions := map[string]app.Function{}
	for k, v := range fakeFunctions() {
		functions[k] = v
	}
	functions["offboard"] = fn.builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		Dir:           templateWithSchedule(t),
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     functions,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Faults:        faults,
		ScheduleTick:  tick,
	})
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestFireSchedules(t *testing.T) {
	t.Parallel()
	fn := &scheduled{}
	faults := &switchableFaults{}
	s := scheduleStack(t, -1, fn, faults)

	if i := slices.IndexFunc(s.Schedules(), func(sc localstack.Schedule) bool { return sc.Function == "OffboardFunction" }); i < 0 {
		t.Fatalf("schedules %+v lack OffboardFunction", s.Schedules())
	}
	time.Sleep(300 * time.Millisecond)
	if n := fn.rec.count("offboard"); n != 0 {
		t.Fatalf("%d invocations with a negative ScheduleTick, want none before a firing is asked for", n)
	}

	t.Run("FireSchedules", func(t *testing.T) {
		s.ResetCalls()
		before := len(fn.events(t))
		at := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("CET", 3600))
		if err := s.FireSchedules(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		evs := fn.events(t)
		if len(evs) != before+1 {
			t.Fatalf("%d invocations, want 1", len(evs)-before)
		}
		ev := evs[len(evs)-1]
		if want := time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC); !ev.Time.Equal(want) {
			t.Errorf("event time %v, want %v", ev.Time, want)
		}
		if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" || ev.AccountID != localstack.AccountID || ev.Region != localstack.Region {
			t.Errorf("event %+v is not an EventBridge scheduled event", ev)
		}
		const rule = "arn:aws:events:us-east-1:123456789012:rule/turnover-local-OffboardFunction-"
		if len(ev.Resources) != 1 || !strings.HasPrefix(ev.Resources[0], rule) {
			t.Errorf("resources %v, want the rule %s…", ev.Resources, rule)
		}
		if string(ev.Detail) != "{}" || ev.ID == "" {
			t.Errorf("detail %s, id %q", ev.Detail, ev.ID)
		}
		inv := fn.rec.of("offboard", nil)[before]
		if inv.ARN != localstack.FunctionARN(s.Resources.Functions["OffboardFunction"]) || inv.RequestID == "" {
			t.Errorf("Lambda context ARN %q, request id %q", inv.ARN, inv.RequestID)
		}
		if got, want := s.Calls()["lambda.Invoke"], len(s.Schedules()); got != want {
			t.Errorf("lambda.Invoke counted %d times, want %d", got, want)
		}
	})

	t.Run("function error", func(t *testing.T) {
		fn.setMode(t, "fail")
		err := s.FireSchedules(context.Background(), time.Now())
		var fe messages.InvokeResponse_Error
		if !errors.As(err, &fe) || fe.Type != "TestError" || fe.Message != "offboarding failed" {
			t.Errorf("error %v, want the function's TestError", err)
		}
	})

	t.Run("panic", func(t *testing.T) {
		fn.setMode(t, "panic")
		if err := s.FireSchedules(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "offboarding panicked") {
			t.Errorf("error %v, want the panic", err)
		}
	})

	t.Run("fault", func(t *testing.T) {
		faults.set(t, func(c localstack.Call) *localstack.Fault {
			if c.String() == "lambda.Invoke" {
				return &localstack.Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException"}
			}
			return nil
		})
		before := fn.rec.count("offboard")
		err := s.FireSchedules(context.Background(), time.Now())
		if err == nil || !strings.Contains(err.Error(), "TooManyRequestsException") {
			t.Errorf("error %v, want the injected fault", err)
		}
		if n := fn.rec.count("offboard") - before; n != 0 {
			t.Errorf("the function ran %d times through a failing Invoke", n)
		}
	})

	fire := func(t *testing.T, method, query string) (int, []byte) {
		t.Helper()
		resp, b := sendURL(t, method, s.APIURL+"/_local/schedules:fire"+query, "", nil, nil)
		return resp.StatusCode, b
	}

	t.Run("HTTP", func(t *testing.T) {
		status, body := fire(t, http.MethodPost, "?at="+url.QueryEscape("2030-01-02T03:04:05+01:00"))
		if status != http.StatusOK {
			t.Fatalf("status %d %s", status, body)
		}
		var got struct {
			Fired []string `json:"fired"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got.Fired, "OffboardFunction") {
			t.Errorf("fired %v, want OffboardFunction among them", got.Fired)
		}
		evs := fn.events(t)
		if want := time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC); !evs[len(evs)-1].Time.Equal(want) {
			t.Errorf("event time %v, want %v", evs[len(evs)-1].Time, want)
		}

		before := time.Now().Truncate(time.Second)
		if status, body := fire(t, http.MethodPost, ""); status != http.StatusOK {
			t.Fatalf("without at: status %d %s", status, body)
		}
		evs = fn.events(t)
		if got := evs[len(evs)-1].Time; got.Before(before) || got.After(time.Now()) {
			t.Errorf("without at the event time is %v, want now", got)
		}

		if status, _ := fire(t, http.MethodPost, "?at=tomorrow"); status != http.StatusBadRequest {
			t.Errorf("bad at: status %d, want 400", status)
		}
		if status, _ := fire(t, http.MethodGet, ""); status != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", status)
		}
	})

	t.Run("HTTP function error", func(t *testing.T) {
		fn.setMode(t, "fail")
		status, body := fire(t, http.MethodPost, "")
		if status != http.StatusInternalServerError || !strings.Contains(string(body), "offboarding failed") {
			t.Errorf("status %d %s, want 500 with the function's error", status, body)
		}
	})
}

// TestScheduleTimer fires on a short tick, keeps firing past a panicking handler, and
// stops with Close.
func TestScheduleTimer(t *testing.T) {
	t.Parallel()
	fn := &scheduled{}
	fn.mode.Store("panic")
	started := time.Now()
	s := scheduleStack(t, 200*time.Millisecond, fn, nil)

	deadline := time.Now().Add(3 * time.Second)
	for fn.rec.count("offboard") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := fn.rec.count("offboard"); n < 3 {
		t.Fatalf("%d invocations within 3s of a 200ms tick", n)
	}
	for _, ev := range fn.events(t) {
		if ev.DetailType != "Scheduled Event" || ev.Time.Before(started.Truncate(time.Second)) || ev.Time.After(time.Now()) {
			t.Errorf("timer sent %+v, want a scheduled event of now", ev)
		}
	}
	if s.Calls()["lambda.Invoke"] < 3 {
		t.Errorf("calls %v, want the firings counted as lambda.Invoke", s.Calls())
	}
	resp, err := http.Get(s.APIURL + "/healthz")
	if err != nil {
		t.Fatalf("stack down after panicking handlers: %v", err)
	}
	resp.Body.Close()

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n := fn.rec.count("offboard")
	time.Sleep(700 * time.Millisecond)
	if after := fn.rec.count("offboard"); after != n {
		t.Errorf("%d invocations after Close", after-n)
	}
}
