package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"turnover/infra/localstack"
)

func TestResourcesExistInMoto(t *testing.T) {
	ctx := context.Background()
	table := stack.Resources.Tables["Table"]
	if table != "turnover-local-Table" {
		t.Errorf("table name %q, want turnover-local-Table", table)
	}
	desc, err := dynamodb.NewFromConfig(stack.AWS).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("describe table: %v", err)
	}
	var gsis []string
	for _, g := range desc.Table.GlobalSecondaryIndexes {
		gsis = append(gsis, aws.ToString(g.IndexName))
	}
	if len(gsis) != 1 || gsis[0] != "gsi1" {
		t.Errorf("global secondary indexes %v, want [gsi1]", gsis)
	}
	if desc.Table.BillingModeSummary == nil || desc.Table.BillingModeSummary.BillingMode != ddbtypes.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", desc.Table.BillingModeSummary)
	}
	ttl, err := dynamodb.NewFromConfig(stack.AWS).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("describe time to live: %v", err)
	}
	if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != "expiresAt" {
		t.Errorf("time to live attribute %q, want expiresAt", got)
	}

	bucket := stack.Resources.Buckets["Bucket"]
	if bucket != "turnover-local-bucket" {
		t.Errorf("bucket name %q, want turnover-local-bucket", bucket)
	}
	if _, err := s3.NewFromConfig(stack.AWS).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("head bucket: %v", err)
	}

	if got, want := stack.Resources.Functions, map[string]string{"ApiFunction": "ApiFunction", "ResetFunction": "ResetFunction", "FinalizeFunction": "FinalizeFunction", "OffboardFunction": "OffboardFunction", "MailerFunction": "MailerFunction"}; !equalMaps(got, want) {
		t.Errorf("functions %v, want %v", got, want)
	}
	if got := stack.Resources.StateMachines["ResetStateMachine"]; got != "arn:aws:states:us-east-1:123456789012:stateMachine:turnover-local-reset-users" {
		t.Errorf("state machine ARN %q", got)
	}
	if got := fakes.seeded.Load(); got != table {
		t.Errorf("seed saw table %q, want %q", got, table)
	}
}

func TestStateMachineDefinitionInMoto(t *testing.T) {
	out, err := sfnClient().DescribeStateMachine(context.Background(), sfnDescribe(stack.Resources.StateMachines["ResetStateMachine"]))
	if err != nil {
		t.Fatalf("describe state machine: %v", err)
	}
	def := aws.ToString(out.Definition)
	if strings.Contains(def, "${") {
		t.Errorf("definition holds an unresolved substitution:\n%s", def)
	}
	if !json.Valid([]byte(def)) {
		t.Fatalf("definition is not JSON:\n%s", def)
	}
	for _, want := range []string{
		`"arn:aws:lambda:us-east-1:123456789012:function:ResetFunction"`,
		`"arn:aws:lambda:us-east-1:123456789012:function:FinalizeFunction"`,
		`"ExecutionType": "STANDARD"`,
	} {
		if !strings.Contains(def, want) {
			t.Errorf("definition lacks %s", want)
		}
	}
}

// Each function gets its own environment from the template, Globals merged.
func TestFunctionEnvironment(t *testing.T) {
	payload := []byte(`{"marker":"env"}`)
	if _, err := lambdaClient().Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("ResetFunction"), Payload: payload}); err != nil {
		t.Fatal(err)
	}
	inv := fakes.of("reset", nil)
	env := inv[len(inv)-1].Env
	want := map[string]string{
		"TABLE_NAME":                      "turnover-local-Table",
		"BUCKET_NAME":                     "turnover-local-bucket",
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_LAMBDA_LOG_LEVEL":            "INFO",
		"AWS_REGION":                      "us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME":        "ResetFunction",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     "300",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
	}
	if !equalMaps(env, want) {
		t.Errorf("reset environment %v, want %v", env, want)
	}
	if d := inv[len(inv)-1].Deadline; d < 290*time.Second || d > 300*time.Second {
		t.Errorf("reset deadline in %s, want about 300s (the function's Timeout)", d)
	}

	api := map[string]string{}
	for _, c := range fakes.of("api", nil) {
		api = c.Env
	}
	if len(api) == 0 {
		// Make the api function run once.
		tok, _ := stack.Token(localstack.TokenClaims{})
		apiGet(t, "/v1/env", tok)
		for _, c := range fakes.of("api", nil) {
			api = c.Env
		}
	}
	for k, v := range map[string]string{
		"STATE_MACHINE_ARN":           stack.Resources.StateMachines["ResetStateMachine"],
		"BATCH_SIZE":                  "25",
		"TABLE_NAME":                  "turnover-local-Table",
		"AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
	} {
		if api[k] != v {
			t.Errorf("api %s = %q, want %q", k, api[k], v)
		}
	}
}

func TestInvoke(t *testing.T) {
	ctx := context.Background()
	c := lambdaClient()
	t.Run("payload round trip by name", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("ResetFunction"),
			Payload:      []byte(`{"marker":"roundtrip","batch":{"users":["1","2"]}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.StatusCode != 200 || out.FunctionError != nil {
			t.Fatalf("status %d, function error %v", out.StatusCode, aws.ToString(out.FunctionError))
		}
		var got struct {
			Done int             `json:"done"`
			Echo json.RawMessage `json:"echo"`
		}
		if err := json.Unmarshal(out.Payload, &got); err != nil {
			t.Fatalf("payload %s: %v", out.Payload, err)
		}
		if got.Done != 2 || !jsonEqual(string(got.Echo), `{"marker":"roundtrip","batch":{"users":["1","2"]}}`) {
			t.Errorf("payload %s", out.Payload)
		}
		inv := fakes.of("reset", func(p json.RawMessage) bool { return bytes.Contains(p, []byte("roundtrip")) })
		if len(inv) != 1 || inv[0].RequestID == "" || inv[0].ARN != "arn:aws:lambda:us-east-1:123456789012:function:ResetFunction" {
			t.Errorf("lambda context %+v", inv)
		}
	})
	t.Run("by ARN", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("arn:aws:lambda:us-east-1:123456789012:function:FinalizeFunction"),
			Payload:      []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(out.Payload) != `{"status":"done"}` {
			t.Errorf("payload %s", out.Payload)
		}
	})
	t.Run("error", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ResetFunction"), Payload: []byte(`{"fail":"no such user"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.FunctionError); got != "Unhandled" {
			t.Errorf("function error %q, want Unhandled", got)
		}
		var doc struct {
			Message string `json:"errorMessage"`
			Type    string `json:"errorType"`
		}
		if err := json.Unmarshal(out.Payload, &doc); err != nil {
			t.Fatalf("payload %s: %v", out.Payload, err)
		}
		if doc.Message != "no such user" || doc.Type != "TestError" {
			t.Errorf("error document %+v, want no such user / TestError", doc)
		}
	})
	t.Run("panic", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ResetFunction"), Payload: []byte(`{"panic":"kaboom"}`)})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Message string `json:"errorMessage"`
			Type    string `json:"errorType"`
		}
		_ = json.Unmarshal(out.Payload, &doc)
		if aws.ToString(out.FunctionError) != "Unhandled" || doc.Message != "kaboom" || doc.Type != "string" {
			t.Errorf("function error %q, document %s", aws.ToString(out.FunctionError), out.Payload)
		}
	})
	t.Run("unknown function", func(t *testing.T) {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("NoSuchFunction"), Payload: []byte(`{}`)})
		var nf *lambdatypes.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("error %v, want ResourceNotFoundException", err)
		}
	})
	t.Run("event", func(t *testing.T) {
		out, err := c.Invoke(ctx, &lambda.InvokeInput{
			FunctionName:   aws.String("ResetFunction"),
			InvocationType: lambdatypes.InvocationTypeEvent,
			Payload:        []byte(`{"marker":"async-event"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.StatusCode != 202 {
			t.Errorf("status %d, want 202", out.StatusCode)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(fakes.of("reset", func(p json.RawMessage) bool { return bytes.Contains(p, []byte("async-event")) })) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the event invocation never ran")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		before := fakes.count("reset")
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("ResetFunction"), InvocationType: lambdatypes.InvocationTypeDryRun})
		if err != nil {
			t.Fatal(err)
		}
		if out.StatusCode != 204 || fakes.count("reset") != before {
			t.Errorf("status %d, want 204 and no invocation", out.StatusCode)
		}
	})
}

func TestCallsAreCounted(t *testing.T) {
	ctx := context.Background()
	before := stack.Calls()
	ddb := dynamodb.NewFromConfig(stack.AWS)
	_, err := ddb.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(stack.Resources.Tables["Table"]),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": &ddbtypes.AttributeValueMemberS{Value: "nobody"}},
	})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	s3c := s3.NewFromConfig(stack.AWS)
	bucket := stack.Resources.Buckets["Bucket"]
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("count/a"), Body: strings.NewReader("a")}); err != nil {
		t.Fatalf("put object: %v", err)
	}
	// Big enough for the SDK to ask for 100-continue.
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("count/big"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatalf("put big object: %v", err)
	}
	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("count/")})
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	sizes := map[string]int64{}
	for _, o := range list.Contents {
		sizes[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
	}
	if sizes["count/a"] != 1 || sizes["count/big"] != int64(len(big)) {
		t.Errorf("object sizes %v, want count/a 1 and count/big %d", sizes, len(big))
	}
	if _, err := lambdaClient().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("FinalizeFunction")}); err != nil {
		t.Fatalf("invoke: %v", err)
	}
	after := stack.Calls()
	for op, want := range map[string]int{"dynamodb.Query": 1, "s3.PutObject": 2, "s3.ListObjectsV2": 1, "lambda.Invoke": 1} {
		if got := after[op] - before[op]; got != want {
			t.Errorf("%s counted %d times, want %d", op, got, want)
		}
	}

	// The same counts over HTTP.
	resp, err := http.Get(stack.FrontDoorURL + "/_local/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var overHTTP map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&overHTTP); err != nil {
		t.Fatal(err)
	}
	if overHTTP["dynamodb.Query"] < after["dynamodb.Query"] {
		t.Errorf("GET /_local/calls dynamodb.Query = %d, want at least %d", overHTTP["dynamodb.Query"], after["dynamodb.Query"])
	}
}

func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	ddb := dynamodb.NewFromConfig(stack.AWS)
	var hits atomic.Int32
	faults.set(t, func(c localstack.Call) *localstack.Fault {
		if c.Service == "dynamodb" && c.Operation == "GetItem" {
			hits.Add(1)
			return &localstack.Fault{Status: 400, Code: "ValidationException", Message: "injected"}
		}
		return nil
	})
	_, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(stack.Resources.Tables["Table"]),
		Key:       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "b"}},
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || ae.ErrorMessage() != "injected" {
		t.Fatalf("error %v, want the injected ValidationException", err)
	}
	if hits.Load() != 1 {
		t.Errorf("injector saw %d GetItem calls, want 1", hits.Load())
	}

	t.Run("s3", func(t *testing.T) {
		faults.set(t, func(c localstack.Call) *localstack.Fault {
			if c.String() == "s3.GetObject" {
				return &localstack.Fault{Status: 403, Code: "AccessDenied", Message: "no"}
			}
			return nil
		})
		_, err := s3.NewFromConfig(stack.AWS).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(stack.Resources.Buckets["Bucket"]), Key: aws.String("x")})
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
			t.Errorf("error %v, want AccessDenied", err)
		}
	})
	t.Run("lambda throttled", func(t *testing.T) {
		faults.set(t, func(c localstack.Call) *localstack.Fault {
			if c.String() == "lambda.Invoke" {
				return &localstack.Fault{Status: 429, Code: "TooManyRequestsException", Message: "Rate exceeded"}
			}
			return nil
		})
		before := fakes.count("finalize")
		_, err := lambdaClient().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("FinalizeFunction")}, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
		var tm *lambdatypes.TooManyRequestsException
		if !errors.As(err, &tm) {
			t.Errorf("error %v, want TooManyRequestsException", err)
		}
		if fakes.count("finalize") != before {
			t.Error("the function ran despite the fault")
		}
	})
	t.Run("delay only", func(t *testing.T) {
		faults.set(t, func(c localstack.Call) *localstack.Fault {
			if c.String() == "dynamodb.DescribeTable" {
				return &localstack.Fault{Delay: 200 * time.Millisecond}
			}
			return nil
		})
		start := time.Now()
		if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(stack.Resources.Tables["Table"])}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("call took %s, want at least the 200ms delay", d)
		}
	})
}

func TestResetCallsOverHTTP(t *testing.T) {
	req, _ := http.NewRequest(http.MethodDelete, stack.FrontDoorURL+"/_local/calls", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := stack.Calls(); len(got) != 0 {
		t.Errorf("calls after reset %v, want none", got)
	}
	// moto's own API is not an AWS call.
	resp, err = http.Get(stack.FrontDoorURL + "/moto-api/config")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := stack.Calls(); len(got) != 0 {
		t.Errorf("calls after /moto-api/ %v, want none", got)
	}
}

func lambdaClient() *lambda.Client { return lambda.NewFromConfig(stack.AWS) }

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
