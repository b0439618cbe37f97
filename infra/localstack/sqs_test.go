package localstack_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/config"
)

// worker is the SQS-triggered function of testdata/sqs. What it does with a message
// depends on the body's first word, before a colon: fail (reported in
// batchItemFailures), error (the invocation fails), bad (a batchItemFailures naming
// no message of the batch), slow (takes 30ms), block (waits for its context to end);
// anything else succeeds.
type worker struct {
	mu      sync.Mutex
	batches []sqsBatch

	inFlight, maxInFlight atomic.Int32
	// blocking hears when a block message has started; unblocked, how its context
	// ended.
	blocking  chan struct{}
	unblocked chan error
}

// sqsBatch is one invocation of the worker.
type sqsBatch struct {
	Event events.SQSEvent
	Raw   json.RawMessage
	ARN   string
}

func newWorker() *worker {
	return &worker{blocking: make(chan struct{}, 1), unblocked: make(chan error, 1)}
}

func (w *worker) builder(context.Context, aws.Config, config.Lookup, *slog.Logger) (lambda.Handler, error) {
	return handlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		n := w.inFlight.Add(1)
		defer w.inFlight.Add(-1)
		for {
			m := w.maxInFlight.Load()
			if n <= m || w.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, err
		}
		b := sqsBatch{Event: ev, Raw: append(json.RawMessage(nil), payload...)}
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			b.ARN = lc.InvokedFunctionArn
		}
		w.mu.Lock()
		w.batches = append(w.batches, b)
		w.mu.Unlock()

		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			switch do, _, _ := strings.Cut(r.Body, ":"); do {
			case "fail":
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			case "bad":
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: "not-in-the-batch"})
			case "error":
				return nil, &TestError{Msg: "worker failed"}
			case "slow":
				time.Sleep(30 * time.Millisecond)
			case "block":
				select {
				case w.blocking <- struct{}{}:
				default:
				}
				<-ctx.Done()
				w.unblocked <- ctx.Err()
				return nil, ctx.Err()
			}
		}
		return json.Marshal(resp)
	}), nil
}

// deliveries returns every record the worker was handed with that body, in order.
func (w *worker) deliveries(body string) []events.SQSMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []events.SQSMessage
	for _, b := range w.batches {
		for _, r := range b.Event.Records {
			if r.Body == body {
				out = append(out, r)
			}
		}
	}
	return out
}

func (w *worker) invocations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.batches)
}

func (w *worker) lastBatch(t *testing.T) sqsBatch {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.batches) == 0 {
		t.Fatal("the worker was never invoked")
	}
	return w.batches[len(w.batches)-1]
}

// producer is the function of testdata/sqs that only knows the queues from its
// environment.
type producer struct {
	env map[string]string
}

func (p *producer) builder(_ context.Context, _ aws.Config, lookup config.Lookup, _ *slog.Logger) (lambda.Handler, error) {
	p.env = map[string]string{}
	for _, k := range []string{"WORK_QUEUE_URL", "WORK_QUEUE_ARN", "WORK_QUEUE_NAME", "DEAD_LETTER_QUEUE_URL", "PLAIN_QUEUE_URL"} {
		if v, ok := lookup(k); ok {
			p.env[k] = v
		}
	}
	return handlerFunc(func(context.Context, []byte) ([]byte, error) { return []byte("null"), nil }), nil
}

// sqsStack starts a stack of its own on testdata/sqs.
func sqsStack(t *testing.T, pollInterval time.Duration, w *worker, p *producer, faults localstack.FaultInjector) *localstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		Dir:               "testdata/sqs",
		FrontDoorAddr:     "127.0.0.1:0",
		APIAddr:           "127.0.0.1:0",
		Functions:         map[string]app.Function{"worker": w.builder, "producer": p.builder},
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Faults:            faults,
		QueuePollInterval: pollInterval,
	})
	if err != nil {
		t.Fatalf("start local stack: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sendMessages sends bodies to the queue at url through the front door and returns
// their message ids.
func sendMessages(t *testing.T, c *sqs.Client, url string, bodies ...string) []string {
	t.Helper()
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i, b := range bodies {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)})
	}
	out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		t.Fatalf("send to %s: %v", url, err)
	}
	if len(out.Failed) > 0 {
		t.Fatalf("send to %s: %d failed", url, len(out.Failed))
	}
	ids := make([]string, len(bodies))
	for _, ok := range out.Successful {
		i, _ := strconv.Atoi(aws.ToString(ok.Id))
		ids[i] = aws.ToString(ok.MessageId)
	}
	return ids
}

// queueCounts returns how many messages the queue holds visible and in flight.
func queueCounts(t *testing.T, c *sqs.Client, url string) (visible, inFlight int) {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("counts of %s: %v", url, err)
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inFlight
}

// waitVisible waits until n messages of the queue are visible again.
func waitVisible(t *testing.T, c *sqs.Client, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, f := queueCounts(t, c, url)
		if v >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d visible and %d in flight 15s on, want %d visible again after the visibility timeout", v, f, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantCounts(t *testing.T, c *sqs.Client, url string, visible, inFlight int) {
	t.Helper()
	if v, f := queueCounts(t, c, url); v != visible || f != inFlight {
		t.Errorf("queue holds %d visible and %d in flight, want %d and %d", v, f, visible, inFlight)
	}
}

func pollQueues(t *testing.T, s *localstack.Stack) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.PollQueues(ctx)
}

func receiveCounts(recs []events.SQSMessage) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Attributes["ApproximateReceiveCount"])
	}
	return out
}

// TestSQSEventSources delivers batch by batch with the pollers off, so each step of
// Lambda's SQS event source mapping can be seen.
func TestSQSEventSources(t *testing.T) {
	t.Parallel()
	w, p, inj := newWorker(), &producer{}, &switchableFaults{}
	s := sqsStack(t, -1, w, p, inj)
	c := sqs.NewFromConfig(s.AWS)
	workURL, plainURL, dlqURL := p.env["WORK_QUEUE_URL"], p.env["PLAIN_QUEUE_URL"], p.env["DEAD_LETTER_QUEUE_URL"]

	t.Run("queues", func(t *testing.T) {
		for env, id := range map[string]string{"WORK_QUEUE_URL": "WorkQueue", "PLAIN_QUEUE_URL": "PlainQueue", "DEAD_LETTER_QUEUE_URL": "WorkDeadLetterQueue"} {
			if got, want := p.env[env], s.Resources.Queues[id]; got != want || want == "" {
				t.Errorf("%s is %q, want Resources.Queues[%s] %q", env, got, id, want)
			}
		}
		if want := s.FrontDoorURL + "/" + localstack.AccountID + "/turnover-local-WorkQueue"; workURL != want {
			t.Errorf("work queue URL %s, want %s", workURL, want)
		}
		if want := "turnover-local-WorkQueue"; p.env["WORK_QUEUE_NAME"] != want {
			t.Errorf("QueueName %q, want %q", p.env["WORK_QUEUE_NAME"], want)
		}
		if !strings.HasSuffix(plainURL, "/turnover-local-plain") {
			t.Errorf("plain queue URL %s does not end in its QueueName", plainURL)
		}
		attrs := func(url string) map[string]string {
			out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
				QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
			})
			if err != nil {
				t.Fatalf("attributes of %s: %v", url, err)
			}
			return out.Attributes
		}
		work, dlq := attrs(workURL), attrs(dlqURL)
		for k, want := range map[string]string{
			"QueueArn": p.env["WORK_QUEUE_ARN"], "VisibilityTimeout": "1", "MessageRetentionPeriod": "3600", "SqsManagedSseEnabled": "true",
		} {
			if work[k] != want {
				t.Errorf("work queue %s is %q, want %q", k, work[k], want)
			}
		}
		var redrive struct {
			DeadLetterTargetARN string `json:"deadLetterTargetArn"`
			MaxReceiveCount     int    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(work["RedrivePolicy"]), &redrive); err != nil {
			t.Fatalf("RedrivePolicy %q: %v", work["RedrivePolicy"], err)
		}
		if redrive.DeadLetterTargetARN != dlq["QueueArn"] || redrive.MaxReceiveCount != 3 {
			t.Errorf("RedrivePolicy %+v, want the dead-letter queue %s after 3 receives", redrive, dlq["QueueArn"])
		}
	})

	t.Run("event", func(t *testing.T) {
		s.ResetCalls()
		before := w.invocations()
		body1, body2 := "ok:"+t.Name()+"/1", "ok:"+t.Name()+"/2"
		out, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl:    aws.String(workURL),
			MessageBody: aws.String(body1),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"kind": {DataType: aws.String("String"), StringValue: aws.String("greeting")},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := append([]string{aws.ToString(out.MessageId)}, sendMessages(t, c, workURL, body2)...)
		n, err := pollQueues(t, s)
		if err != nil || n != 2 {
			t.Fatalf("PollQueues handed %d messages, %v; want 2 and no error", n, err)
		}
		if got := w.invocations() - before; got != 1 {
			t.Fatalf("%d invocations, want the two messages in one batch", got)
		}
		b := w.lastBatch(t)
		if b.ARN != localstack.FunctionARN("WorkerFunction") {
			t.Errorf("invoked as %q", b.ARN)
		}
		if len(b.Event.Records) != 2 {
			t.Fatalf("%d records, want 2: %s", len(b.Event.Records), b.Raw)
		}
		for i, r := range b.Event.Records {
			sum := md5.Sum([]byte(r.Body))
			switch {
			case r.MessageId != ids[i] || r.Body != []string{body1, body2}[i]:
				t.Errorf("record %d is message %s %q, want %s %q", i, r.MessageId, r.Body, ids[i], []string{body1, body2}[i])
			case r.ReceiptHandle == "" || r.Md5OfBody != hex.EncodeToString(sum[:]):
				t.Errorf("record %d: receipt handle %q, md5OfBody %q", i, r.ReceiptHandle, r.Md5OfBody)
			case r.EventSource != "aws:sqs" || r.EventSourceARN != p.env["WORK_QUEUE_ARN"] || r.AWSRegion != localstack.Region:
				t.Errorf("record %d comes from %s %s in %s", i, r.EventSource, r.EventSourceARN, r.AWSRegion)
			case r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SentTimestamp"] == "" || r.Attributes["ApproximateFirstReceiveTimestamp"] == "":
				t.Errorf("record %d attributes %v", i, r.Attributes)
			}
		}
		kind := b.Event.Records[0].MessageAttributes["kind"]
		if kind.DataType != "String" || aws.ToString(kind.StringValue) != "greeting" || b.Event.Records[0].Md5OfMessageAttributes == "" {
			t.Errorf("message attributes %s", b.Raw)
		}
		if !strings.Contains(string(b.Raw), `"Records":[`) || !strings.Contains(string(b.Raw), `"stringListValues":[]`) {
			t.Errorf("payload %s is not shaped as Lambda's", b.Raw)
		}
		if got := s.Calls()["lambda.Invoke"]; got != 1 {
			t.Errorf("lambda.Invoke counted %d times, want 1", got)
		}
		wantCounts(t, c, workURL, 0, 0)
		if n, err := pollQueues(t, s); n != 0 || err != nil {
			t.Errorf("a second poll handed %d messages, %v; want nothing left", n, err)
		}
	})

	t.Run("batch item failures", func(t *testing.T) {
		ok1, failed, ok2 := "ok:"+t.Name()+"/1", "fail:"+t.Name(), "ok:"+t.Name()+"/2"
		sendMessages(t, c, workURL, ok1, failed, ok2)
		if n, err := pollQueues(t, s); n != 3 || err != nil {
			t.Fatalf("PollQueues handed %d messages, %v; want 3", n, err)
		}
		wantCounts(t, c, workURL, 0, 1)
		for range 2 {
			waitVisible(t, c, workURL, 1)
			if n, err := pollQueues(t, s); n != 1 || err != nil {
				t.Fatalf("redelivery: PollQueues handed %d messages, %v; want the failed one", n, err)
			}
		}
		if got := receiveCounts(w.deliveries(failed)); strings.Join(got, ",") != "1,2,3" {
			t.Errorf("the failed message came with receive counts %v, want 1,2,3", got)
		}
		for _, body := range []string{ok1, ok2} {
			if n := len(w.deliveries(body)); n != 1 {
				t.Errorf("%s delivered %d times, want once", body, n)
			}
		}
		// Received maxReceiveCount times: the next receive moves it to the dead-letter
		// queue instead of handing it out.
		waitVisible(t, c, workURL, 1)
		if n, err := pollQueues(t, s); n != 0 || err != nil {
			t.Errorf("after maxReceiveCount PollQueues handed %d messages, %v; want none", n, err)
		}
		wantCounts(t, c, workURL, 0, 0)
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlqURL), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != failed {
			t.Errorf("dead-letter queue holds %d messages, want the failed one", len(out.Messages))
		}
		purge(t, c, dlqURL)
	})

	t.Run("function error", func(t *testing.T) {
		bad, good := "error:"+t.Name(), "ok:"+t.Name()
		sendMessages(t, c, workURL, bad, good)
		n, err := pollQueues(t, s)
		var fe messages.InvokeResponse_Error
		if n != 2 || !errors.As(err, &fe) || fe.Type != "TestError" {
			t.Fatalf("PollQueues handed %d messages, %v; want 2 and the worker's TestError", n, err)
		}
		wantCounts(t, c, workURL, 0, 2)
		waitVisible(t, c, workURL, 2)
		if n, _ := pollQueues(t, s); n != 2 {
			t.Fatalf("redelivery handed %d messages, want the whole batch again", n)
		}
		for _, body := range []string{bad, good} {
			if got := receiveCounts(w.deliveries(body)); strings.Join(got, ",") != "1,2" {
				t.Errorf("%s came with receive counts %v, want 1,2", body, got)
			}
		}
		purge(t, c, workURL)
	})

	t.Run("unknown itemIdentifier", func(t *testing.T) {
		sendMessages(t, c, workURL, "bad:"+t.Name(), "ok:"+t.Name())
		if _, err := pollQueues(t, s); err == nil || !strings.Contains(err.Error(), "whole batch failed") {
			t.Fatalf("error %v, want the whole batch failed", err)
		}
		wantCounts(t, c, workURL, 0, 2)
		purge(t, c, workURL)
	})

	t.Run("without ReportBatchItemFailures", func(t *testing.T) {
		body := "fail:" + t.Name()
		sendMessages(t, c, plainURL, body)
		if n, err := pollQueues(t, s); n != 1 || err != nil {
			t.Fatalf("PollQueues handed %d messages, %v; want 1", n, err)
		}
		arn := "arn:aws:sqs:" + localstack.Region + ":" + localstack.AccountID + ":turnover-local-plain"
		if got := w.lastBatch(t).Event.Records[0]; got.Body != body || got.EventSourceARN != arn {
			t.Errorf("record %+v, want %s from %s", got, body, arn)
		}
		// The response is not read, so the reported failure is deleted all the same.
		wantCounts(t, c, plainURL, 0, 0)
	})

	t.Run("fault", func(t *testing.T) {
		inj.set(t, func(call localstack.Call) *localstack.Fault {
			if call.String() == "lambda.Invoke" {
				return &localstack.Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException"}
			}
			return nil
		})
		body := "ok:" + t.Name()
		sendMessages(t, c, workURL, body)
		n, err := pollQueues(t, s)
		if n != 0 || err == nil || !strings.Contains(err.Error(), "TooManyRequestsException") {
			t.Fatalf("PollQueues handed %d messages, %v; want none and the injected fault", n, err)
		}
		if got := len(w.deliveries(body)); got != 0 {
			t.Fatalf("the worker ran %d times through a failing Invoke", got)
		}
		wantCounts(t, c, workURL, 0, 1)
		inj.set(t, nil)
		waitVisible(t, c, workURL, 1)
		if n, err := pollQueues(t, s); n != 1 || err != nil {
			t.Fatalf("after the fault PollQueues handed %d messages, %v", n, err)
		}
		if got := receiveCounts(w.deliveries(body)); strings.Join(got, ",") != "2" {
			t.Errorf("receive counts %v, want 2: the faulted receive counts", got)
		}
	})

	t.Run("DrainQueues", func(t *testing.T) {
		bodies := []string{"ok:" + t.Name() + "/1", "fail:" + t.Name(), "ok:" + t.Name() + "/2"}
		sendMessages(t, c, workURL, bodies...)
		sendMessages(t, c, plainURL, "ok:"+t.Name()+"/plain")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		began := time.Now()
		if err := s.DrainQueues(ctx); err != nil {
			t.Fatal(err)
		}
		// The failure needs three receives a visibility timeout apart, then a fourth
		// that moves it to the dead-letter queue.
		if took := time.Since(began); took < 2*time.Second {
			t.Errorf("drained after %v, before the failed message could reach the dead-letter queue", took)
		}
		if got := len(w.deliveries(bodies[1])); got != 3 {
			t.Errorf("failed message delivered %d times, want maxReceiveCount 3", got)
		}
		for _, b := range []string{bodies[0], bodies[2], "ok:" + t.Name() + "/plain"} {
			if got := len(w.deliveries(b)); got != 1 {
				t.Errorf("%s delivered %d times, want once", b, got)
			}
		}
		wantCounts(t, c, workURL, 0, 0)
		wantCounts(t, c, plainURL, 0, 0)
		wantCounts(t, c, dlqURL, 1, 0)
	})

	t.Run("DrainQueues deadline", func(t *testing.T) {
		// The plain queue has no RedrivePolicy: a message that keeps failing stays.
		sendMessages(t, c, plainURL, "error:"+t.Name())
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err := s.DrainQueues(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "PlainQueue: ") {
			t.Errorf("error %v, want the deadline with what PlainQueue holds", err)
		}
		if n := len(w.deliveries("error:" + t.Name())); n == 0 {
			t.Error("DrainQueues with the pollers off never delivered the message")
		}
		purge(t, c, plainURL)
	})
}

func purge(t *testing.T, c *sqs.Client, url string) {
	t.Helper()
	if _, err := c.PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatalf("purge %s: %v", url, err)
	}
}

// TestSQSPollers lets the pollers deliver, within the function's reserved concurrency,
// and stops them with Close while an invocation runs.
func TestSQSPollers(t *testing.T) {
	t.Parallel()
	w, p := newWorker(), &producer{}
	s := sqsStack(t, 0, w, p, nil)
	c := sqs.NewFromConfig(s.AWS)

	var work, plain []string
	for i := range 25 {
		work = append(work, "slow:work/"+strconv.Itoa(i))
	}
	for i := range 8 {
		plain = append(plain, "slow:plain/"+strconv.Itoa(i))
	}
	for i := 0; i < len(work); i += 10 {
		sendMessages(t, c, p.env["WORK_QUEUE_URL"], work[i:min(i+10, len(work))]...)
	}
	sendMessages(t, c, p.env["PLAIN_QUEUE_URL"], plain...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.DrainQueues(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range append(work, plain...) {
		if n := len(w.deliveries(b)); n != 1 {
			t.Errorf("%s delivered %d times, want once", b, n)
		}
	}
	if got := w.maxInFlight.Load(); got != 1 {
		t.Errorf("%d invocations ran at once, want ReservedConcurrentExecutions 1", got)
	}
	if got, batches := s.Calls()["lambda.Invoke"], (len(work)+9)/10+(len(plain)+4)/5; got < batches {
		t.Errorf("lambda.Invoke counted %d times, want at least %d batches", got, batches)
	}
	for _, op := range []string{"sqs.ReceiveMessage", "sqs.DeleteMessageBatch"} {
		if n := s.Calls()[op]; n != 0 {
			t.Errorf("%s counted %d times: polling is Lambda's, not the application's", op, n)
		}
	}

	sendMessages(t, c, p.env["WORK_QUEUE_URL"], "block:close")
	select {
	case <-w.blocking:
	case <-time.After(15 * time.Second):
		t.Fatal("the blocking message never reached the worker")
	}
	closed := make(chan error, 1)
	began := time.Now()
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(4 * time.Second):
		// The running invocation would have timed out after 5s.
		t.Fatalf("Close still waiting %v on, with a poller's invocation running", time.Since(began).Round(time.Millisecond))
	}
	select {
	case err := <-w.unblocked:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the running invocation ended with %v, want its context canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the running invocation's context did not end with Close")
	}
	n := w.invocations()
	time.Sleep(300 * time.Millisecond)
	if after := w.invocations(); after != n {
		t.Errorf("%d invocations after Close", after-n)
	}
}

// TestTemplateQueues checks the queues of the repository's template in the shared
// stack: the mail queue sends what fails ten times to its dead-letter queue, and the
// pollers of its event source mapping hand what is sent to it to the mailer function.
func TestTemplateQueues(t *testing.T) {
	mail, dead := stack.Resources.Queues["MailQueue"], stack.Resources.Queues["MailDeadLetterQueue"]
	if want := stack.FrontDoorURL + "/" + localstack.AccountID + "/turnover-local-MailQueue"; mail != want || dead == "" {
		t.Fatalf("queues %v, want MailQueue at %s and MailDeadLetterQueue", stack.Resources.Queues, want)
	}
	c := sqs.NewFromConfig(stack.AWS)
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(mail), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	var redrive struct {
		DeadLetterTargetARN string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(out.Attributes["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", out.Attributes["RedrivePolicy"], err)
	}
	if want := "arn:aws:sqs:us-east-1:123456789012:turnover-local-MailDeadLetterQueue"; redrive.DeadLetterTargetARN != want || redrive.MaxReceiveCount != 10 {
		t.Errorf("RedrivePolicy %+v, want %s after 10 receives", redrive, want)
	}
	if got := out.Attributes["VisibilityTimeout"]; got != "60" {
		t.Errorf("VisibilityTimeout %s, want 60", got)
	}

	marker := t.Name() + "/" + strconv.FormatInt(time.Now().UnixNano(), 10)
	body := `{"marker":"` + marker + `"}`
	sendMessages(t, c, mail, body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stack.DrainQueues(ctx); err != nil {
		t.Fatal(err)
	}
	got := fakes.of("mailer", func(p json.RawMessage) bool { return strings.Contains(string(p), marker) })
	if len(got) != 1 {
		t.Fatalf("the mailer ran %d times with the message, want once", len(got))
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(got[0].Payload, &ev); err != nil || len(ev.Records) != 1 || ev.Records[0].Body != body {
		t.Errorf("the mailer got %s, want an SQS event with the message", got[0].Payload)
	}
}

// TestQueueIntrinsics resolves queues outside a running stack, where their URLs are
// the regional endpoint's, as CloudFormation's would be.
func TestQueueIntrinsics(t *testing.T) {
	tp, err := localstack.ParseTemplate([]byte(`
Resources:
  Jobs:
    Type: AWS::SQS::Queue
  Ordered:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true}
  Named:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${AWS::StackName}-named.fifo", FifoQueue: true}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://sqs.us-east-1.amazonaws.com/123456789012/"
	for _, tc := range []struct {
		in   any
		want string
	}{
		{map[string]any{"Ref": "Jobs"}, base + "turnover-local-Jobs"},
		{map[string]any{"Fn::GetAtt": []any{"Jobs", "Arn"}}, "arn:aws:sqs:us-east-1:123456789012:turnover-local-Jobs"},
		{map[string]any{"Fn::GetAtt": []any{"Jobs", "QueueName"}}, "turnover-local-Jobs"},
		{map[string]any{"Fn::GetAtt": []any{"Jobs", "QueueUrl"}}, base + "turnover-local-Jobs"},
		{map[string]any{"Fn::Sub": "${Jobs.Arn}|${Jobs}"}, "arn:aws:sqs:us-east-1:123456789012:turnover-local-Jobs|" + base + "turnover-local-Jobs"},
		{map[string]any{"Ref": "Ordered"}, base + "turnover-local-Ordered.fifo"},
		{map[string]any{"Fn::GetAtt": []any{"Named", "QueueName"}}, "turnover-local-named.fifo"},
	} {
		got, err := tp.ResolveString(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%v resolves to %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
