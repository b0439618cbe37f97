package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/config"
)

// callerFn is the reset function of the chaos stack: it makes the AWS calls its payload
// asks for and records how each went.
type callerFn struct {
	mu    sync.Mutex
	calls map[string][]callerCall // by request id
	ended map[string]bool
}

type callerCall struct {
	Op   string
	Err  error
	Took time.Duration
}

// callerInput is the payload of the callerFn.
type callerInput struct {
	// Touch makes one DynamoDB GetItem and one S3 HeadBucket.
	Touch bool `json:"touch"`
	// Batches makes that many BatchWriteItem calls of two items each, under Prefix.
	// After a failed call the rest are made with a context that is never cancelled,
	// as a handler that ignores its context would.
	Batches int    `json:"batches"`
	Prefix  string `json:"prefix"`
}

func (w *callerFn) record(ctx context.Context, c callerCall) {
	lc, _ := lambdacontext.FromContext(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[lc.AwsRequestID] = append(w.calls[lc.AwsRequestID], c)
}

func (w *callerFn) of(requestID string) ([]callerCall, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]callerCall(nil), w.calls[requestID]...), w.ended[requestID]
}

func (w *callerFn) builder(_ context.Context, cfg aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
	table, _ := lookup("TABLE_NAME")
	bucket, _ := lookup("BUCKET_NAME")
	ddb := dynamodb.NewFromConfig(cfg)
	s3c := s3.NewFromConfig(cfg)
	return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		defer func() {
			w.mu.Lock()
			w.ended[lc.AwsRequestID] = true
			w.mu.Unlock()
		}()
		var in callerInput
		if err := json.Unmarshal(payload, &in); err != nil {
			return nil, err
		}
		timed := func(op string, call func() error) {
			start := time.Now()
			err := call()
			w.record(ctx, callerCall{Op: op, Err: err, Took: time.Since(start)})
		}
		if in.Touch {
			timed("GetItem", func() error {
				_, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("touch", "x")})
				return err
			})
			timed("HeadBucket", func() error {
				_, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
				return err
			})
		}
		callCtx := ctx
		written := 0
		for i := range in.Batches {
			var reqs []ddbtypes.WriteRequest
			for j := range 2 {
				item := itemKey(in.Prefix, fmt.Sprintf("%d-%d", i, j))
				reqs = append(reqs, ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: item}})
			}
			var err error
			timed("BatchWriteItem", func() error {
				_, err = ddb.BatchWriteItem(callCtx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{table: reqs}})
				return err
			})
			if err != nil {
				callCtx = context.WithoutCancel(ctx)
				continue
			}
			written += 2
		}
		return json.Marshal(map[string]int{"done": written})
	}), nil
}

func itemKey(pk, sk string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: pk}, "sk": &ddbtypes.AttributeValueMemberS{Value: sk}}
}

// TestChaosStack runs a stack of its own, whose reset function makes AWS calls, for
// what needs functions that call AWS: bootstrap spared by faults, the trace's
// attribution and crashes. It runs alone, not beside the timing-sensitive parallel
// tests of other stacks.
func TestChaosStack(t *testing.T) {
	w := &callerFn{calls: map[string][]callerCall{}, ended: map[string]bool{}}
	functions := map[string]app.Function{}
	for k, v := range fakeFunctions() {
		functions[k] = v
	}
	functions["reset"] = w.builder
	// Every call of every service would fail: none may during the start.
	bootFaults, err := localstack.ParseFaults("dynamodb=1,s3=1,lambda=1,ses=1,sqs=1,states=1,seed=1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     functions,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Faults:        bootFaults,
		ScheduleTick:  -1,
		Seed: func(ctx context.Context, cfg aws.Config, res localstack.Resources) error {
			_, err := dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(res.Tables["Table"]), Item: itemKey("seeded", "1")})
			return err
		},
	})
	if err != nil {
		t.Fatalf("start with every call faulted: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	table := s.Resources.Tables["Table"]
	ddb := dynamodb.NewFromConfig(s.AWS)

	t.Run("bootstrap spared", func(t *testing.T) {
		if got := bootFaults.Injected(); len(got) != 0 {
			t.Errorf("injected %v while the stack started, want nothing", got)
		}
		_, err := dynamodb.NewFromConfig(s.AWS, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }).
			GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("seeded", "1")})
		if err == nil {
			t.Error("a call after the start was not faulted")
		}
		s.SetFaults(nil)
		out, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("seeded", "1")})
		if err != nil || out.Item == nil {
			t.Errorf("the seeded item: %v, %v", out, err)
		}
	})
	s.SetFaults(nil)

	invoke := func(t *testing.T, in callerInput) (*lambdasvc.InvokeOutput, string) {
		t.Helper()
		payload, _ := json.Marshal(in)
		out, err := lambdasvc.NewFromConfig(s.AWS).Invoke(context.Background(), &lambdasvc.InvokeInput{
			FunctionName: aws.String("ResetFunction"), Payload: payload,
		})
		if err != nil {
			t.Fatalf("invoke: %v", err)
		}
		return out, invocationOf(t, out)
	}

	t.Run("trace", func(t *testing.T) {
		s.ResetTrace()
		out, id := invoke(t, callerInput{Touch: true})
		if out.FunctionError != nil {
			t.Fatalf("function error %s: %s", aws.ToString(out.FunctionError), out.Payload)
		}
		calls, _ := w.of(id)
		for _, c := range calls {
			if c.Err != nil {
				t.Errorf("%s: %v", c.Op, c.Err)
			}
		}
		var mine []localstack.TraceEntry
		var invokeEntry *localstack.TraceEntry
		trace := s.Trace()
		for i, e := range trace {
			switch {
			case e.Invocation == id:
				mine = append(mine, e)
			case e.Service == "lambda" && e.Operation == "Invoke":
				invokeEntry = &trace[i]
			}
		}
		var ops []string
		for _, e := range mine {
			ops = append(ops, e.Service+"."+e.Operation)
			if e.Function != "ResetFunction" || e.Status != http.StatusOK {
				t.Errorf("entry %+v, want function ResetFunction and status 200", e)
			}
		}
		if got := strings.Join(ops, " "); got != "dynamodb.GetItem s3.HeadBucket" {
			t.Errorf("calls traced to the invocation: %s, want dynamodb.GetItem s3.HeadBucket", got)
		}
		if invokeEntry == nil {
			t.Fatalf("no lambda.Invoke in the trace %+v", trace)
		}
		if invokeEntry.Function != "" || invokeEntry.Invocation != "" || invokeEntry.Status != http.StatusOK {
			t.Errorf("the test's Invoke traced as %+v, want no function, no invocation and status 200", *invokeEntry)
		}
		for _, e := range mine {
			if e.Start.Before(invokeEntry.Start) || e.End.After(invokeEntry.End) || e.End.Before(e.Start) {
				t.Errorf("%s.%s ran %v–%v, outside the Invoke's %v–%v", e.Service, e.Operation, e.Start, e.End, invokeEntry.Start, invokeEntry.End)
			}
		}
		s.ResetCalls()
		if got := s.Trace(); len(got) != 0 {
			t.Errorf("trace after ResetCalls holds %d entries", len(got))
		}
	})

	t.Run("crash", func(t *testing.T) {
		t.Cleanup(s.DisarmCrashes)
		for _, bad := range []localstack.Crash{
			{Function: "nosuch", AfterCalls: 1},
			{Function: "reset", Operation: "BatchWriteItem", AfterCalls: 1},
			{Function: "reset", AfterCalls: 0},
			{Function: "reset", AfterCalls: 1, Times: -1},
		} {
			if err := s.ArmCrash(bad); err == nil {
				t.Errorf("ArmCrash(%+v) accepted", bad)
			}
		}
		if err := s.ArmCrash(localstack.Crash{Function: "reset", Operation: "dynamodb.BatchWriteItem", AfterCalls: 2, Times: 1}); err != nil {
			t.Fatal(err)
		}
		s.ResetTrace()
		out, id := invoke(t, callerInput{Batches: 5, Prefix: "crash-1"})

		if got := aws.ToString(out.FunctionError); got != "Unhandled" || out.StatusCode != http.StatusOK {
			t.Errorf("status %d, function error %q; want 200 and Unhandled", out.StatusCode, got)
		}
		var doc struct {
			Type    string `json:"errorType"`
			Message string `json:"errorMessage"`
		}
		if err := json.Unmarshal(out.Payload, &doc); err != nil {
			t.Fatalf("payload %s: %v", out.Payload, err)
		}
		if want := "RequestId: " + id + " Error: Runtime exited with error: signal: killed"; doc.Type != "Runtime.ExitError" || doc.Message != want {
			t.Errorf("error document %+v, want Runtime.ExitError %q", doc, want)
		}

		calls, ended := w.of(id)
		if !ended {
			t.Error("Invoke answered before the killed handler returned")
		}
		if len(calls) != 5 {
			t.Fatalf("the handler made %d calls, want 5: %+v", len(calls), calls)
		}
		if calls[0].Err != nil {
			t.Errorf("call 1: %v, want success", calls[0].Err)
		}
		if !errors.Is(calls[1].Err, context.Canceled) {
			t.Errorf("call 2, the one the invocation died on: %v, want its context cancelled", calls[1].Err)
		}
		for i, c := range calls[2:] {
			if c.Err == nil || !strings.Contains(c.Err.Error(), "was killed") {
				t.Errorf("call %d after the crash: %v, want the killed invocation's failure", i+3, c.Err)
			}
			if c.Took > time.Second {
				t.Errorf("call %d after the crash took %s, want it to fail at once", i+3, c.Took)
			}
		}

		// The writes of the calls that reached moto happened, the rest did not.
		q, err := ddb.Query(context.Background(), &dynamodb.QueryInput{
			TableName:                 aws.String(table),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": &ddbtypes.AttributeValueMemberS{Value: "crash-1"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var sks []string
		for _, it := range q.Items {
			sks = append(sks, it["sk"].(*ddbtypes.AttributeValueMemberS).Value)
		}
		if got := strings.Join(sks, " "); got != "0-0 0-1 1-0 1-1" {
			t.Errorf("items in moto: %s, want those of the first two batches", got)
		}

		crashes := s.Crashes()
		if len(crashes) != 1 || crashes[0].Function != "ResetFunction" || crashes[0].Invocation != id ||
			crashes[0].Operation != "dynamodb.BatchWriteItem" || crashes[0].Calls != 2 {
			t.Errorf("Crashes() %+v, want the one invocation after 2 BatchWriteItem", crashes)
		}
		var statuses []int
		for _, e := range s.Trace() {
			if e.Invocation == id {
				statuses = append(statuses, e.Status)
			}
		}
		if fmt.Sprint(statuses) != "[200 0]" {
			t.Errorf("statuses of the invocation's calls at the front door %v, want [200 0] (the last answer lost)", statuses)
		}

		t.Run("front door refuses the dead invocation", func(t *testing.T) {
			cfg := s.AWS.Copy()
			cfg.HTTPClient = headerClient{id: id}
			_, err := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }).PutItem(context.Background(),
				&dynamodb.PutItemInput{TableName: aws.String(table), Item: itemKey("crash-1", "late")})
			if err == nil {
				t.Fatal("a call carrying the killed invocation's id went through")
			}
			got, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: itemKey("crash-1", "late")})
			if err != nil || got.Item != nil {
				t.Errorf("the refused write: %v, %v; want no item", got.Item, err)
			}
		})

		t.Run("disarmed after Times", func(t *testing.T) {
			out, _ := invoke(t, callerInput{Batches: 3, Prefix: "crash-2"})
			if out.FunctionError != nil || !jsonEqual(string(out.Payload), `{"done":6}`) {
				t.Errorf("second invocation: %s %s, want it to finish", aws.ToString(out.FunctionError), out.Payload)
			}
			if n := len(s.Crashes()); n != 1 {
				t.Errorf("%d crashes, want still 1", n)
			}
		})

		t.Run("through Step Functions", func(t *testing.T) {
			if err := s.ArmCrash(localstack.Crash{Function: "ResetFunction", Operation: "dynamodb.BatchWriteItem", AfterCalls: 1}); err != nil {
				t.Fatal(err)
			}
			def, err := os.ReadFile("testdata/invoke.asl.json")
			if err != nil {
				t.Fatal(err)
			}
			def = bytes.ReplaceAll(def, []byte("${FunctionArn}"), []byte(localstack.FunctionARN(s.Resources.Functions["ResetFunction"])))
			c := sfn.NewFromConfig(s.AWS)
			sm, err := c.CreateStateMachine(context.Background(), &sfn.CreateStateMachineInput{
				Name: aws.String("crash-invoke"), Definition: aws.String(string(def)), RoleArn: aws.String("arn:aws:iam::123456789012:role/crash"),
			})
			if err != nil {
				t.Fatal(err)
			}
			start, err := c.StartExecution(context.Background(), &sfn.StartExecutionInput{
				StateMachineArn: sm.StateMachineArn, Input: aws.String(`{"batches":2,"prefix":"crash-sfn"}`),
			})
			if err != nil {
				t.Fatal(err)
			}
			done := waitExecution(t, c, aws.ToString(start.ExecutionArn))
			if done.Status != sfntypes.ExecutionStatusFailed || aws.ToString(done.Error) != "Runtime.ExitError" {
				t.Errorf("execution %s with error %q, want FAILED with Runtime.ExitError\n%s", done.Status, aws.ToString(done.Error),
					executionHistory(t, c, aws.ToString(start.ExecutionArn)))
			}
			if n := len(s.Crashes()); n != 2 {
				t.Errorf("%d crashes, want 2", n)
			}
		})
	})
}

// invocationOf is the request id an Invoke answered with, which is the invocation's.
func invocationOf(t *testing.T, out *lambdasvc.InvokeOutput) string {
	t.Helper()
	id, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if !ok || id == "" {
		t.Fatal("the Invoke answer has no request id")
	}
	return id
}

// headerClient sends every request with InvocationHeader set, as a process outside the
// stack's own HTTP client would.
type headerClient struct{ id string }

func (c headerClient) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set(localstack.InvocationHeader, c.id)
	return http.DefaultClient.Do(r)
}
