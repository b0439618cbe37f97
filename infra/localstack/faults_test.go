package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"turnover/infra/localstack"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    string // String() without the seed when the spec has none
		wantErr string
	}{
		{spec: "dynamodb=0.10,s3=0.05,lambda=0.05,ses=0.10,sqs=0.05,latency=20ms,seed=7",
			want: "dynamodb=0.1,lambda=0.05,s3=0.05,ses=0.1,sqs=0.05,latency=20ms,seed=7"},
		{spec: " S3 = 1 , states=0 ,, seed=0 ,", want: "s3=1,states=0,seed=0"},
		{spec: "latency=1s,seed=18446744073709551615", want: "latency=1s,seed=18446744073709551615"},
		{spec: "", want: ""},
		{spec: "dynamodb", wantErr: `"dynamodb": want name=value`},
		{spec: "dynamodb=", wantErr: "want name=value"},
		{spec: "=0.1", wantErr: "want name=value"},
		{spec: "dynamo=0.1", wantErr: `unknown name "dynamo"; want one of dynamodb, lambda, s3, ses, sqs, states`},
		{spec: "dynamodb=1.5", wantErr: `dynamodb rate "1.5" is not a number from 0 to 1`},
		{spec: "dynamodb=-0.1", wantErr: "not a number from 0 to 1"},
		{spec: "dynamodb=NaN", wantErr: "not a number from 0 to 1"},
		{spec: "dynamodb=10%", wantErr: "not a number from 0 to 1"},
		{spec: "dynamodb=0.1,dynamodb=0.2", wantErr: "dynamodb is given twice"},
		{spec: "latency=20", wantErr: `latency "20" is not a non-negative Go duration`},
		{spec: "latency=-5ms", wantErr: "non-negative"},
		{spec: "seed=-1", wantErr: `seed "-1" is not an unsigned integer`},
		{spec: "seed=x", wantErr: "not an unsigned integer"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := localstack.ParseFaults(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := f.String()
			if !strings.Contains(tc.spec, "seed=") {
				got = got[:strings.LastIndex(got, "seed=")]
				got = strings.TrimSuffix(got, ",")
			}
			if got != tc.want {
				t.Errorf("String() %q, want %q", got, tc.want)
			}
			again, err := localstack.ParseFaults(f.String())
			if err != nil || again.String() != f.String() {
				t.Errorf("ParseFaults(String()) = %v, %v; want the same spec", again, err)
			}
		})
	}
}

func TestRandomFaultsRates(t *testing.T) {
	const n = 20000
	f, err := localstack.ParseFaults("dynamodb=0.1,s3=0.5,seed=42")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range n {
		for _, svc := range []string{"dynamodb", "s3", "lambda"} {
			if fault := f.Inject(localstack.Call{Service: svc, Operation: "Op"}); fault != nil {
				if fault.Status == 0 {
					t.Fatalf("%s fault %+v without a status and no latency asked for", svc, fault)
				}
				got[svc]++
			}
		}
	}
	for svc, rate := range map[string]float64{"dynamodb": 0.1, "s3": 0.5, "lambda": 0} {
		want := rate * n
		sigma := math.Sqrt(n * rate * (1 - rate))
		if math.Abs(float64(got[svc])-want) > 5*sigma+0.5 {
			t.Errorf("%s failed %d of %d calls, want about %.0f", svc, got[svc], n, want)
		}
	}
	sum := func(m map[string]int, prefix string) (total int) {
		for k, v := range m {
			if strings.HasPrefix(k, prefix) {
				total += v
			}
		}
		return total
	}
	inj := f.Injected()
	if sum(inj, "dynamodb.") != got["dynamodb"] || sum(inj, "s3.") != got["s3"] || len(inj) != 4 {
		t.Errorf("Injected() %v, want the %d dynamodb and %d s3 faults over two kinds each", inj, got["dynamodb"], got["s3"])
	}

	t.Run("same seed, same choices", func(t *testing.T) {
		a, _ := localstack.ParseFaults("dynamodb=0.3,seed=9")
		b, _ := localstack.ParseFaults(a.String())
		for i := range 1000 {
			fa := a.Inject(localstack.Call{Service: "dynamodb"})
			fb := b.Inject(localstack.Call{Service: "dynamodb"})
			if (fa == nil) != (fb == nil) || (fa != nil && fa.Code != fb.Code) {
				t.Fatalf("call %d: %+v and %+v differ", i, fa, fb)
			}
		}
	})
	t.Run("latency on every call", func(t *testing.T) {
		f, _ := localstack.ParseFaults("latency=20ms")
		fault := f.Inject(localstack.Call{Service: "sts", Operation: "GetCallerIdentity"})
		if fault == nil || fault.Delay != 20*time.Millisecond || fault.Status != 0 {
			t.Errorf("fault %+v, want a 20ms delay only", fault)
		}
	})
}

// useFaults makes spec the main stack's faults until the test ends.
func useFaults(t *testing.T, spec string) *localstack.RandomFaults {
	t.Helper()
	f, err := localstack.ParseFaults(spec)
	if err != nil {
		t.Fatal(err)
	}
	prev := stack.Faults()
	stack.SetFaults(f)
	t.Cleanup(func() { stack.SetFaults(prev) })
	return f
}

// The injected errors reach the SDK as AWS's would: the same typed errors, retryable
// and throttling as the SDK's retryer judges them.
func TestInjectedErrorsAsTheSDKSeesThem(t *testing.T) {
	if stack.Faults() != localstack.FaultInjector(faults) {
		t.Fatalf("Faults() %v, want Options.Faults until SetFaults", stack.Faults())
	}
	ctx := context.Background()
	table := aws.String(stack.Resources.Tables["Table"])
	bucket := aws.String(stack.Resources.Buckets["Bucket"])
	type kind struct {
		status    int
		typed     func(error) bool // errors.As on the modelled type, nil when the SDK has none
		throttles bool
	}
	as := func(target any) func(error) bool { return func(err error) bool { return errors.As(err, target) } }
	for _, tc := range []struct {
		service string
		call    func() error
		kinds   map[string]kind // by error code
	}{
		{"dynamodb", func() error {
			_, err := dynamodb.NewFromConfig(stack.AWS, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }).GetItem(ctx, &dynamodb.GetItemInput{
				TableName: table,
				Key:       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "b"}},
			})
			return err
		}, map[string]kind{
			"ProvisionedThroughputExceededException": {400, as(new(*ddbtypes.ProvisionedThroughputExceededException)), true},
			"ThrottlingException":                    {400, as(new(*ddbtypes.ThrottlingException)), true},
		}},
		{"s3", func() error {
			_, err := s3.NewFromConfig(stack.AWS, func(o *s3.Options) { o.RetryMaxAttempts = 1 }).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("faults/x")})
			return err
		}, map[string]kind{
			"SlowDown":      {503, nil, true},
			"InternalError": {500, nil, false},
		}},
		{"lambda", func() error {
			_, err := lambda.NewFromConfig(stack.AWS, func(o *lambda.Options) { o.RetryMaxAttempts = 1 }).Invoke(ctx, &lambda.InvokeInput{
				FunctionName: aws.String("FinalizeFunction"), Payload: []byte(`{"marker":"faulted"}`),
			})
			return err
		}, map[string]kind{
			"TooManyRequestsException": {429, as(new(*lambdatypes.TooManyRequestsException)), true},
			"ServiceException":         {500, as(new(*lambdatypes.ServiceException)), false},
		}},
		{"ses", func() error {
			_, err := sesv2.NewFromConfig(stack.AWS, func(o *sesv2.Options) { o.RetryMaxAttempts = 1 }).GetAccount(ctx, &sesv2.GetAccountInput{})
			return err
		}, map[string]kind{
			"TooManyRequestsException": {429, as(new(*sestypes.TooManyRequestsException)), true},
		}},
		{"sqs", func() error {
			_, err := sqs.NewFromConfig(stack.AWS, func(o *sqs.Options) { o.RetryMaxAttempts = 1 }).ListQueues(ctx, &sqs.ListQueuesInput{})
			return err
		}, map[string]kind{
			"RequestThrottled":    {403, as(new(*sqstypes.RequestThrottled)), true},
			"ThrottlingException": {400, nil, true},
		}},
		{"states", func() error {
			_, err := sfn.NewFromConfig(stack.AWS, func(o *sfn.Options) { o.RetryMaxAttempts = 1 }).ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
			return err
		}, map[string]kind{
			"ThrottlingException": {400, nil, true},
		}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			f := useFaults(t, tc.service+"=1,seed=5")
			finalizeRuns := fakes.count("finalize")
			seen := map[string]int{}
			const calls = 24
			for range calls {
				err := tc.call()
				var ae smithy.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("error %v, want an AWS API error", err)
				}
				k, ok := tc.kinds[ae.ErrorCode()]
				if !ok {
					t.Fatalf("error code %q (%v), want one of %v", ae.ErrorCode(), err, slices.Sorted(maps.Keys(tc.kinds)))
				}
				seen[ae.ErrorCode()]++
				var re *awshttp.ResponseError
				if !errors.As(err, &re) || re.HTTPStatusCode() != k.status {
					t.Errorf("%s: response %v, want status %d", ae.ErrorCode(), re, k.status)
				}
				if k.typed != nil && !k.typed(err) {
					t.Errorf("%s: %T is not the SDK's modelled error type", ae.ErrorCode(), ae)
				}
				if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err); got != aws.TrueTernary {
					t.Errorf("%s: the SDK's retryer says retryable %v, want true", ae.ErrorCode(), got)
				}
				if got := retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary; got != k.throttles {
					t.Errorf("%s: the SDK's retryer says throttle %v, want %v", ae.ErrorCode(), got, k.throttles)
				}
			}
			if len(seen) != len(tc.kinds) {
				t.Errorf("codes seen %v in %d calls, want each of %d kinds", seen, calls, len(tc.kinds))
			}
			want := map[string]int{}
			for code, n := range seen {
				want[tc.service+"."+code] = n
			}
			if got := f.Injected(); !equalCounts(got, want) {
				t.Errorf("Injected() %v, want %v", got, want)
			}
			if tc.service == "lambda" && fakes.count("finalize") != finalizeRuns {
				t.Error("the function ran despite the injected fault")
			}
		})
	}

	t.Run("other services untouched", func(t *testing.T) {
		useFaults(t, "ses=1,sqs=1,states=1,lambda=1,s3=1")
		_, err := dynamodb.NewFromConfig(stack.AWS).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: table})
		if err != nil {
			t.Errorf("describe table: %v", err)
		}
	})
	t.Run("retried by the SDK", func(t *testing.T) {
		// Half the calls fail: the SDK's default retries see nearly all through.
		f := useFaults(t, "dynamodb=0.5,seed=11")
		c := dynamodb.NewFromConfig(stack.AWS, func(o *dynamodb.Options) {
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 10
				so.MaxBackoff = 5 * time.Millisecond
				so.RateLimiter = noRateLimit{}
			})
		})
		for i := range 10 {
			if _, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: table}); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if n := len(f.Injected()); n == 0 {
			t.Error("no fault was injected")
		}
	})
}

// noRateLimit lets the retryer retry as often as the test asks.
type noRateLimit struct{}

func (noRateLimit) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (noRateLimit) AddTokens(uint) error { return nil }

func TestFaultsOverHTTP(t *testing.T) {
	prev := stack.Faults()
	t.Cleanup(func() { stack.SetFaults(prev) })
	url := stack.FrontDoorURL + "/_local/faults"
	type status struct {
		Active   bool           `json:"active"`
		Spec     string         `json:"spec"`
		Injected map[string]int `json:"injected"`
	}
	do := func(t *testing.T, method, body string, wantStatus int) (status, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d (%s), want %d", method, body, resp.StatusCode, raw.String(), wantStatus)
		}
		var st status
		_ = json.Unmarshal(raw.Bytes(), &st)
		return st, raw.String()
	}
	describe := func() error {
		_, err := dynamodb.NewFromConfig(stack.AWS, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }).
			DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(stack.Resources.Tables["Table"])})
		return err
	}

	st, _ := do(t, http.MethodPost, `{"spec":"dynamodb=1, seed=3"}`, http.StatusOK)
	if !st.Active || st.Spec != "dynamodb=1,seed=3" {
		t.Errorf("after POST: %+v, want the spec active in canonical form", st)
	}
	if err := describe(); !retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
		t.Errorf("describe table: %v, want a throttling error", err)
	}
	st, _ = do(t, http.MethodGet, "", http.StatusOK)
	if st.Injected["dynamodb.ProvisionedThroughputExceededException"]+st.Injected["dynamodb.ThrottlingException"] != 1 {
		t.Errorf("GET: injected %v, want the one fault", st.Injected)
	}

	_, body := do(t, http.MethodPost, `{"spec":"dynamo=1"}`, http.StatusBadRequest)
	if !strings.Contains(body, `unknown name \"dynamo\"`) {
		t.Errorf("bad spec answer %s, want the parse error", body)
	}
	_, body = do(t, http.MethodPost, `{"faults":"dynamodb=1"}`, http.StatusBadRequest)
	if !strings.Contains(body, "spec") {
		t.Errorf("bad body answer %s, want the body's shape", body)
	}
	if st, _ := do(t, http.MethodGet, "", http.StatusOK); st.Spec != "dynamodb=1,seed=3" {
		t.Errorf("a refused POST changed the faults to %+v", st)
	}

	st, _ = do(t, http.MethodPost, `{"spec":""}`, http.StatusOK)
	if st.Active || st.Spec != "" {
		t.Errorf("after an empty spec: %+v, want faults off", st)
	}
	if err := describe(); err != nil {
		t.Errorf("describe table with faults off: %v", err)
	}
	do(t, http.MethodPut, "", http.StatusMethodNotAllowed)
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// moto's Step Functions engine reads a Distributed Map's items once, with no retry,
// where Step Functions retries inside the service: faults spare those reads.
func TestFaultsSpareStepFunctionsBookkeeping(t *testing.T) {
	ctx := context.Background()
	bucket := stack.Resources.Buckets["Bucket"]
	key := "jobs/niftywidgets/faults/manifest.json"
	if _, err := s3.NewFromConfig(stack.AWS).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(`[{"users":["1001"]}]`),
	}); err != nil {
		t.Fatalf("put manifest: %v", err)
	}
	f := useFaults(t, "s3=1,seed=1")
	input, _ := json.Marshal(map[string]any{
		"domain":   "niftywidgets",
		"jobId":    "faults",
		"options":  map[string]bool{},
		"manifest": map[string]string{"bucket": bucket, "key": key},
	})
	c := sfnClient()
	start, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stack.Resources.StateMachines["ResetStateMachine"]),
		Name:            aws.String("faults-spare-item-reader"),
		Input:           aws.String(string(input)),
	})
	if err != nil {
		t.Fatalf("start execution: %v", err)
	}
	out := waitExecution(t, c, aws.ToString(start.ExecutionArn))
	if out.Status != "SUCCEEDED" {
		t.Fatalf("status %s, want SUCCEEDED with S3 faulted for everyone else\n%s", out.Status, executionHistory(t, c, aws.ToString(start.ExecutionArn)))
	}
	if got := f.Injected(); len(got) != 0 {
		t.Errorf("injected %v into the engine's reads", got)
	}
	// Everyone else's S3 calls still fail.
	_, err = s3.NewFromConfig(stack.AWS, func(o *s3.Options) { o.RetryMaxAttempts = 1 }).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		t.Error("a test's GetObject was not faulted")
	}
}
