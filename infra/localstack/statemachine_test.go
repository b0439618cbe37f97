package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// waitExecution polls until the execution leaves RUNNING.
func waitExecution(t *testing.T, c *sfn.Client, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatalf("describe execution: %v", err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s still running", arn)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func executionHistory(t *testing.T, c *sfn.Client, arn string) string {
	t.Helper()
	out, err := c.GetExecutionHistory(context.Background(), &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		return "history: " + err.Error()
	}
	var b strings.Builder
	for _, e := range out.Events {
		b.WriteString(string(e.Type))
		if e.ExecutionFailedEventDetails != nil {
			b.WriteString(" " + aws.ToString(e.ExecutionFailedEventDetails.Error) + ": " + aws.ToString(e.ExecutionFailedEventDetails.Cause))
		}
		if e.TaskFailedEventDetails != nil {
			b.WriteString(" " + aws.ToString(e.TaskFailedEventDetails.Error) + ": " + aws.ToString(e.TaskFailedEventDetails.Cause))
		}
		if e.MapRunFailedEventDetails != nil {
			b.WriteString(" " + aws.ToString(e.MapRunFailedEventDetails.Error) + ": " + aws.ToString(e.MapRunFailedEventDetails.Cause))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestStepFunctionsInvokesThroughFrontDoor(t *testing.T) {
	ctx := context.Background()
	def, err := os.ReadFile("testdata/invoke.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:lambda:us-east-1:123456789012:function:" + stack.Resources.Functions["ResetFunction"]
	def = bytes.ReplaceAll(def, []byte("${FunctionArn}"), []byte(arn))
	c := sfn.NewFromConfig(stack.AWS)
	sm, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String("test-invoke"),
		Definition: aws.String(string(def)),
		RoleArn:    aws.String("arn:aws:iam::123456789012:role/test-invoke"),
	})
	if err != nil {
		t.Fatalf("create state machine: %v", err)
	}
	before := stack.Calls()["lambda.Invoke"]
	start, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: sm.StateMachineArn,
		Input:           aws.String(`{"marker":"sfn-simple","batch":{"users":["1","2","3"]}}`),
	})
	if err != nil {
		t.Fatalf("start execution: %v", err)
	}
	out := waitExecution(t, c, aws.ToString(start.ExecutionArn))
	if out.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("status %s, want SUCCEEDED\n%s", out.Status, executionHistory(t, c, aws.ToString(start.ExecutionArn)))
	}
	if got, want := aws.ToString(out.Output), `{"done":3}`; !jsonEqual(got, want) {
		t.Errorf("output %s, want %s", got, want)
	}
	if got := stack.Calls()["lambda.Invoke"] - before; got < 1 {
		t.Errorf("front door saw %d lambda.Invoke calls from the execution, want at least 1", got)
	}
	seen := fakes.of("reset", func(p json.RawMessage) bool { return bytes.Contains(p, []byte("sfn-simple")) })
	if len(seen) != 1 {
		t.Fatalf("reset function ran %d times for the execution, want 1", len(seen))
	}
	if seen[0].ARN != arn {
		t.Errorf("InvokedFunctionArn %q, want %q", seen[0].ARN, arn)
	}
}

func TestResetUsersStateMachineRunsOnMoto(t *testing.T) {
	ctx := context.Background()
	bucket := stack.Resources.Buckets["Bucket"]
	key := "jobs/niftywidgets/j1/manifest.json"
	_, err := s3.NewFromConfig(stack.AWS).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Body:   strings.NewReader(`[{"users":["1009"]},{"users":["1002","1003"]}]`),
	})
	if err != nil {
		t.Fatalf("put manifest: %v", err)
	}
	c := sfn.NewFromConfig(stack.AWS)
	input, _ := json.Marshal(map[string]any{
		"domain":   "niftywidgets",
		"jobId":    "j1",
		"options":  map[string]bool{"deleteVoicemailMessages": true},
		"manifest": map[string]string{"bucket": bucket, "key": key},
	})
	start, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stack.Resources.StateMachines["ResetStateMachine"]),
		Name:            aws.String("j1"),
		Input:           aws.String(string(input)),
	})
	if err != nil {
		t.Fatalf("start execution: %v", err)
	}
	out := waitExecution(t, c, aws.ToString(start.ExecutionArn))
	if out.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("status %s, want SUCCEEDED\n%s", out.Status, executionHistory(t, c, aws.ToString(start.ExecutionArn)))
	}
	isJob := func(p json.RawMessage) bool { return bytes.Contains(p, []byte(`"j1"`)) }
	var batches [][]string
	for _, inv := range fakes.of("reset", isJob) {
		var in struct {
			Domain string `json:"domain"`
			JobID  string `json:"jobId"`
			Batch  struct {
				Users []string `json:"users"`
			} `json:"batch"`
		}
		if err := json.Unmarshal(inv.Payload, &in); err != nil {
			t.Fatalf("reset payload %s: %v", inv.Payload, err)
		}
		if in.Domain != "niftywidgets" || in.JobID != "j1" {
			t.Errorf("reset payload %s: want domain niftywidgets and jobId j1", inv.Payload)
		}
		batches = append(batches, in.Batch.Users)
	}
	slices.SortFunc(batches, func(a, b []string) int { return len(a) - len(b) })
	if want := [][]string{{"1009"}, {"1002", "1003"}}; !slices.EqualFunc(batches, want, slices.Equal) {
		t.Errorf("reset saw batches %v, want %v", batches, want)
	}
	fin := fakes.of("finalize", isJob)
	if len(fin) != 1 {
		t.Fatalf("finalize ran %d times, want 1", len(fin))
	}
	if want := `{"domain":"niftywidgets","jobId":"j1","mapFailed":false}`; !jsonEqual(string(fin[0].Payload), want) {
		t.Errorf("finalize payload %s, want %s", fin[0].Payload, want)
	}
}

func sfnClient() *sfn.Client { return sfn.NewFromConfig(stack.AWS) }

func sfnDescribe(arn string) *sfn.DescribeStateMachineInput {
	return &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
