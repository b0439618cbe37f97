package localstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// eventSQS is the event type of a function that consumes an SQS queue.
const eventSQS = "SQS"

const (
	// defaultSQSPollers is how many batches of one SQS event source may be at the
	// function at once when neither the event's ScalingConfig nor the function's
	// ReservedConcurrentExecutions says otherwise.
	defaultSQSPollers = 2
	// sqsLongPoll is the WaitTimeSeconds of a poller's receive, in seconds. moto holds
	// a thread for each waiting receive until its wait ends, even one Close abandoned,
	// so the wait stays short.
	sqsLongPoll = 1
	// sqsMaxReceive is the most messages one ReceiveMessage or DeleteMessageBatch takes.
	sqsMaxReceive = 10
	// sqsRetryPause is how long a poller rests after a batch failed before reaching the
	// function (SQS unreachable, an injected Invoke fault), so that it does not spin.
	sqsRetryPause = time.Second
	// drainCheck is how often DrainQueues reads the queues' counts.
	drainCheck = 50 * time.Millisecond
)

// queueSpec is one AWS::SQS::Queue of the template.
type queueSpec struct {
	LogicalID, Name, URL, ARN string
	Props                     map[string]any // resolved
	// deadLetter is the logical id of the queue RedrivePolicy moves messages to.
	deadLetter string
	// waits says ReceiveMessageWaitTimeSeconds is set: a receive that sends no
	// WaitTimeSeconds (the SDK leaves out 0) long-polls for that long.
	waits bool
}

// sqsSource is one enabled SQS trigger of a function, a SAM SQS event or an
// AWS::Lambda::EventSourceMapping on a queue: what Lambda's event source mapping does
// in AWS.
type sqsSource struct {
	// Function is the function's logical id; Event the SAM event's name, or the logical
	// id of the AWS::Lambda::EventSourceMapping.
	Function, Event string
	mapping         bool // declared as an AWS::Lambda::EventSourceMapping
	queue           *queueSpec
	batchSize       int
	window          time.Duration // MaximumBatchingWindowInSeconds
	reportFailures  bool          // FunctionResponseTypes has ReportBatchItemFailures
	pollers         int           // batches at the function at once
	reserved        int           // the function's ReservedConcurrentExecutions; -1 if unset
}

func (src *sqsSource) String() string {
	if src.mapping {
		return "event source mapping " + src.Event + " of " + src.Function
	}
	return "SQS event " + src.Event + " of " + src.Function
}

// queueRunner is what the SQS event sources of a running stack share.
type queueRunner struct {
	// sqs talks to moto directly: polling is Lambda's work, not the application's, so
	// the pollers' calls are neither counted nor faulted. Their invocations are.
	sqs *sqs.Client
	// slots holds a token for each batch at a function that has
	// ReservedConcurrentExecutions, by logical id.
	slots map[string]chan struct{}
}

// queueURL is the URL of a queue of the template. In a running stack it is on the
// front door, where moto builds the same URL from the request's Host.
func (t *Template) queueURL(logicalID string) (string, error) {
	name, err := t.PhysicalName(logicalID)
	if err != nil {
		return "", err
	}
	base := t.queueEndpoint
	if base == "" {
		base = "https://sqs." + Region + "." + URLSuffix
	}
	return base + "/" + AccountID + "/" + name, nil
}

// defaultQueueName is the name of a queue the template does not name. A FIFO queue's
// name must end in .fifo, which CloudFormation adds. A FifoQueue that does not
// resolve is reported when the queue's properties are resolved.
func (t *Template) defaultQueueName(r *Resource, def string) string {
	if v, ok := r.Properties["FifoQueue"]; ok {
		if s, err := t.ResolveString(v); err == nil && strings.EqualFold(s, "true") {
			return def + ".fifo"
		}
	}
	return def
}

// addQueues plans the template's queues, each after its dead-letter queue.
func (p *plan) addQueues(t *Template) error {
	var all []*queueSpec
	byID, byARN := map[string]*queueSpec{}, map[string]*queueSpec{}
	for _, r := range t.ResourcesOfType(typeQueue) {
		q := &queueSpec{LogicalID: r.LogicalID}
		var err error
		if q.Name, err = t.PhysicalName(r.LogicalID); err != nil {
			return err
		}
		if q.URL, err = t.queueURL(r.LogicalID); err != nil {
			return err
		}
		if q.ARN, err = t.ARN(r.LogicalID); err != nil {
			return err
		}
		props, err := t.Resolve(r.Properties)
		if err != nil {
			return fmt.Errorf("%s: %w", r.LogicalID, err)
		}
		q.Props = props.(map[string]any)
		if v, ok := q.Props["ReceiveMessageWaitTimeSeconds"]; ok {
			s, err := scalarString(v)
			if err != nil {
				return fmt.Errorf("%s.ReceiveMessageWaitTimeSeconds: %w", r.LogicalID, err)
			}
			q.waits = s != "0"
		}
		all = append(all, q)
		byID[q.LogicalID], byARN[q.ARN] = q, q
		p.resources.Queues[q.LogicalID] = q.URL
	}
	for _, q := range all {
		v, ok := q.Props["RedrivePolicy"]
		if !ok {
			continue
		}
		policy, _, err := jsonObject(v)
		if err != nil {
			return fmt.Errorf("%s.RedrivePolicy: %w", q.LogicalID, err)
		}
		arn, _ := policy["deadLetterTargetArn"].(string)
		dlq := byARN[arn]
		if dlq == nil {
			return fmt.Errorf("%s.RedrivePolicy: deadLetterTargetArn %q is not a queue of the template", q.LogicalID, arn)
		}
		q.deadLetter = dlq.LogicalID
	}
	const visiting, done = 1, 2
	state := map[string]int{}
	var visit func(q *queueSpec) error
	visit = func(q *queueSpec) error {
		switch state[q.LogicalID] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("queue %s: the dead-letter queues of RedrivePolicy form a cycle", q.LogicalID)
		}
		state[q.LogicalID] = visiting
		if q.deadLetter != "" {
			if err := visit(byID[q.deadLetter]); err != nil {
				return err
			}
		}
		state[q.LogicalID] = done
		p.queues = append(p.queues, q)
		return nil
	}
	for _, q := range all {
		if err := visit(q); err != nil {
			return err
		}
	}
	return nil
}

// jsonObject reads a property CloudFormation types as Json: a mapping, or a string of
// JSON. It returns the object and its JSON text.
func jsonObject(v any) (map[string]any, string, error) {
	switch x := v.(type) {
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, "", err
		}
		return x, string(b), nil
	case string:
		var m map[string]any
		if err := json.Unmarshal([]byte(x), &m); err != nil {
			return nil, "", fmt.Errorf("not a JSON object: %w", err)
		}
		return m, x, nil
	}
	return nil, "", fmt.Errorf("want a mapping, have %T", v)
}

// readSQSSources reads the enabled SQS events of a function (its event source
// mappings are read by readEventSourceMappings). addQueues must have run.
func (p *plan) readSQSSources(t *Template, r *Resource) ([]*sqsSource, error) {
	id := r.LogicalID
	props := t.withGlobals("Function", r.Properties)
	evs, _ := props["Events"].(map[string]any)
	names := make([]string, 0, len(evs))
	for k, ev := range evs {
		if em, _ := ev.(map[string]any); em["Type"] == eventSQS {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	reserved, err := reservedConcurrency(t, r)
	if err != nil {
		return nil, err
	}
	var out []*sqsSource
	for _, name := range names {
		src, err := p.sqsSource(t, evs[name].(map[string]any)["Properties"], "Queue", reserved)
		if err != nil {
			return nil, fmt.Errorf("%s event %s: %w", id, name, err)
		}
		if src != nil {
			src.Function, src.Event = id, name
			out = append(out, src)
		}
	}
	return out, nil
}

// reservedConcurrency reads a function's ReservedConcurrentExecutions; -1 when unset.
func reservedConcurrency(t *Template, r *Resource) (int, error) {
	props := t.withGlobals("Function", r.Properties)
	v, ok := props["ReservedConcurrentExecutions"]
	if !ok {
		return -1, nil
	}
	rv, err := t.Resolve(v)
	if err != nil {
		return 0, fmt.Errorf("%s.ReservedConcurrentExecutions: %w", r.LogicalID, err)
	}
	if _, none := rv.(noValue); none {
		return -1, nil
	}
	n, err := intValue(rv, 0, 1<<30)
	if err != nil {
		return 0, fmt.Errorf("%s.ReservedConcurrentExecutions: %w", r.LogicalID, err)
	}
	return n, nil
}

// readEventSourceMappings reads the template's enabled AWS::Lambda::EventSourceMapping
// resources on SQS queues. Mappings of other sources (streams, Kafka, MQ) are not
// run locally, as the SAM events of those types are not. The functions and queues
// must have been planned.
func (p *plan) readEventSourceMappings(t *Template) ([]*sqsSource, error) {
	var out []*sqsSource
	for _, r := range t.ResourcesOfType(typeEventSourceMapping) {
		id := r.LogicalID
		arn, err := t.ResolveString(r.Properties["EventSourceArn"])
		if err != nil {
			return nil, fmt.Errorf("%s.EventSourceArn: %w", id, err)
		}
		if !strings.HasPrefix(arn, "arn:"+Partition+":sqs:") {
			continue
		}
		fnRef, err := t.ResolveString(r.Properties["FunctionName"])
		if err != nil {
			return nil, fmt.Errorf("%s.FunctionName: %w", id, err)
		}
		i := slices.IndexFunc(p.functions, func(f *functionSpec) bool { return fnRef == f.Name || fnRef == f.ARN })
		if i < 0 {
			return nil, fmt.Errorf("%s.FunctionName %s is not the name or ARN of an AWS::Serverless::Function of the template", id, fnRef)
		}
		fn := t.Resource(p.functions[i].LogicalID)
		reserved, err := reservedConcurrency(t, fn)
		if err != nil {
			return nil, err
		}
		src, err := p.sqsSource(t, r.Properties, "EventSourceArn", reserved)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if src != nil {
			src.Function, src.Event, src.mapping = fn.LogicalID, id, true
			out = append(out, src)
		}
	}
	return out, nil
}

// sqsSource reads the properties of one SQS event or event source mapping, whose
// queue's ARN is under queueKey; a disabled one is nil.
func (p *plan) sqsSource(t *Template, rawProps any, queueKey string, reserved int) (*sqsSource, error) {
	rp, err := t.Resolve(rawProps)
	if err != nil {
		return nil, err
	}
	props, _ := rp.(map[string]any)
	if enabled, err := eventEnabled(props); err != nil || !enabled {
		return nil, err
	}
	if _, ok := props["FilterCriteria"]; ok {
		// Delivering what a filter would drop would make tests pass that fail in AWS.
		return nil, errors.New("FilterCriteria is not supported locally")
	}
	arn, err := scalarString(props[queueKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", queueKey, err)
	}
	i := slices.IndexFunc(p.queues, func(q *queueSpec) bool { return q.ARN == arn })
	if i < 0 {
		return nil, fmt.Errorf("%s %s is not the ARN of a queue of the template", queueKey, arn)
	}
	src := &sqsSource{queue: p.queues[i], batchSize: 10, pollers: defaultSQSPollers, reserved: reserved}
	if v, ok := props["BatchSize"]; ok {
		if src.batchSize, err = intValue(v, 1, 10000); err != nil {
			return nil, fmt.Errorf("BatchSize: %w", err)
		}
	}
	if v, ok := props["MaximumBatchingWindowInSeconds"]; ok {
		n, err := intValue(v, 0, 300)
		if err != nil {
			return nil, fmt.Errorf("MaximumBatchingWindowInSeconds: %w", err)
		}
		src.window = time.Duration(n) * time.Second
	}
	if src.batchSize > sqsMaxReceive && src.window == 0 {
		return nil, errors.New("a BatchSize over 10 needs a MaximumBatchingWindowInSeconds of at least 1")
	}
	if v, ok := props["FunctionResponseTypes"]; ok {
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("FunctionResponseTypes: want a list, have %T", v)
		}
		src.reportFailures = slices.Contains(l, any("ReportBatchItemFailures"))
	}
	if sc, ok := props["ScalingConfig"].(map[string]any); ok {
		if v, ok := sc["MaximumConcurrency"]; ok {
			if src.pollers, err = intValue(v, 2, 1000); err != nil {
				return nil, fmt.Errorf("ScalingConfig.MaximumConcurrency: %w", err)
			}
		}
	}
	if reserved >= 0 {
		src.pollers = min(src.pollers, reserved)
	}
	return src, nil
}

// intValue reads a resolved scalar as a whole number from lo to hi.
func intValue(v any, lo, hi int) (int, error) {
	s, err := scalarString(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number from %d to %d", s, lo, hi)
	}
	return n, nil
}

// queueAttributes are the properties of AWS::SQS::Queue that are CreateQueue
// attributes of the same name and value.
var queueAttributes = []string{
	"ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoThroughputLimit",
	"KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize",
	"MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled",
	"VisibilityTimeout",
}

// createQueues makes the template's queues in moto through the front door, one after
// the other so that each dead-letter queue exists before the queue naming it.
func (s *Stack) createQueues(ctx context.Context) error {
	if len(s.plan.queues) == 0 {
		return nil
	}
	c := sqs.NewFromConfig(s.AWS)
	for _, q := range s.plan.queues {
		if err := s.createQueue(ctx, c, q); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) createQueue(ctx context.Context, c *sqs.Client, q *queueSpec) error {
	in := &sqs.CreateQueueInput{QueueName: aws.String(q.Name), Attributes: map[string]string{}}
	var skipped []string
	for k, v := range q.Props {
		var err error
		switch {
		case k == "QueueName":
		case slices.Contains(queueAttributes, k):
			in.Attributes[k], err = scalarString(v)
		case k == "FifoQueue":
			// A standard queue is what SQS makes without it; only true is sent.
			var str string
			if str, err = scalarString(v); strings.EqualFold(str, "true") {
				in.Attributes[k] = "true"
			}
		case k == "RedrivePolicy" || k == "RedriveAllowPolicy":
			_, in.Attributes[k], err = jsonObject(v)
		case k == "Tags":
			var tags []struct{ Key, Value string }
			b, _ := json.Marshal(v)
			if err = json.Unmarshal(b, &tags); err == nil {
				in.Tags = map[string]string{}
				for _, tag := range tags {
					in.Tags[tag.Key] = tag.Value
				}
			}
		default:
			skipped = append(skipped, k)
		}
		if err != nil {
			return fmt.Errorf("queue %s: %s: %w", q.LogicalID, k, err)
		}
	}
	out, err := c.CreateQueue(ctx, in)
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name, err)
	}
	if got := aws.ToString(out.QueueUrl); got != q.URL {
		return fmt.Errorf("queue %s: moto made %s, the template resolves %s", q.LogicalID, got, q.URL)
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		s.log.Debug("queue properties not applied locally", "queue", q.Name, "properties", strings.Join(skipped, ","))
	}
	s.log.Debug("queue created", "logicalId", q.LogicalID, "url", q.URL)
	return nil
}

// startQueues readies the SQS event sources and, unless Options.QueuePollInterval is
// negative, starts their pollers, which stop with Close.
func (s *Stack) startQueues() {
	s.queues = &queueRunner{
		sqs:   sqs.NewFromConfig(s.AWS, func(o *sqs.Options) { o.BaseEndpoint = aws.String(s.motoURL.String()) }),
		slots: map[string]chan struct{}{},
	}
	for _, src := range s.plan.sqsSources {
		if src.reserved > 0 && s.queues.slots[src.Function] == nil {
			s.queues.slots[src.Function] = make(chan struct{}, src.reserved)
		}
	}
	if s.opt.QueuePollInterval < 0 {
		return
	}
	for _, src := range s.plan.sqsSources {
		for range src.pollers {
			s.timers.Add(1)
			go s.pollQueue(src)
		}
	}
}

// pollQueue is one poller of an SQS event source: until Close, it receives a batch,
// hands it to the function and deletes what the function handled.
func (s *Stack) pollQueue(src *sqsSource) {
	defer s.timers.Done()
	ctx := s.baseCtx
	for {
		n, err := s.pollBatch(ctx, src, sqsLongPoll, true)
		if ctx.Err() != nil {
			return
		}
		var rest time.Duration
		switch {
		case err != nil && n == 0:
			s.log.Warn("SQS batch did not reach the function", "function", src.Function, "event", src.Event, "err", err)
			rest = sqsRetryPause
		case err != nil:
			s.log.Warn("SQS batch failed", "function", src.Function, "event", src.Event, "messages", n, "err", err)
		case n == 0:
			rest = s.opt.QueuePollInterval
		}
		if rest > 0 && !sleepCtx(ctx, rest) {
			return
		}
	}
}

// sleepCtx waits d or until ctx ends, and says whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollBatch receives a batch from src's queue, waiting up to wait seconds for the
// first message and, when gather is set, up to MaximumBatchingWindowInSeconds for more.
// It invokes the function with the batch the way the front door's Lambda Invoke does
// (counted, faults applied) and deletes the messages the function handled: all of them
// on success, except those the function names in batchItemFailures when the event
// reports them; none when the invocation fails, so that they come back after the
// queue's visibility timeout. It returns how many messages the function was handed.
func (s *Stack) pollBatch(ctx context.Context, src *sqsSource, wait int32, gather bool) (int, error) {
	if src.reserved == 0 {
		return 0, fmt.Errorf("%s: the function's ReservedConcurrentExecutions is 0, so Lambda never invokes it", src)
	}
	if slots := s.queues.slots[src.Function]; slots != nil {
		// The slot is taken before receiving, so that no batch sits in flight waiting
		// for the function.
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	msgs, err := s.receive(ctx, src, min(src.batchSize, sqsMaxReceive), wait)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	if gather && src.window > 0 {
		msgs = s.gather(ctx, src, msgs)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f := s.functions[s.plan.resources.Functions[src.Function]]
	if f == nil {
		return 0, fmt.Errorf("%s: the function is not built", src)
	}
	s.log.Debug("SQS batch", "function", src.Function, "event", src.Event, "messages", len(msgs))
	call := Call{Service: "lambda", Operation: "Invoke"}
	s.calls.add(call)
	if fault := s.fault(call); fault != nil {
		return 0, fmt.Errorf("%s: lambda.Invoke failed with injected fault %d %s", src, fault.Status, fault.Code)
	}
	res := s.invoke(ctx, f, newRequestID(), sqsEvent(src, msgs))
	if res.Err != nil {
		return len(msgs), fmt.Errorf("%s: %w", src, *res.Err)
	}
	handled := msgs
	if src.reportFailures {
		failed, err := batchItemFailures(res.Payload, msgs)
		if err != nil {
			return len(msgs), fmt.Errorf("%s: %w", src, err)
		}
		handled = slices.DeleteFunc(slices.Clone(msgs), func(m sqstypes.Message) bool { return failed[aws.ToString(m.MessageId)] })
	}
	return len(msgs), s.deleteMessages(ctx, src, handled)
}

// receive asks src's queue for up to n messages with every attribute.
func (s *Stack) receive(ctx context.Context, src *sqsSource, n int, wait int32) ([]sqstypes.Message, error) {
	if wait == 0 && src.queue.waits {
		// The SDK does not send 0, so the queue's own, longer wait would apply.
		wait = 1
	}
	out, err := s.queues.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(src.queue.URL),
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             wait,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: receive from %s: %w", src, src.queue.LogicalID, err)
	}
	return out.Messages, nil
}

// gather keeps receiving until the batch is full or the batching window has passed,
// as Lambda does before it invokes. A failing receive ends the wait early; the
// function gets what was gathered.
func (s *Stack) gather(ctx context.Context, src *sqsSource, msgs []sqstypes.Message) []sqstypes.Message {
	until := time.Now().Add(src.window)
	for len(msgs) < src.batchSize {
		left := time.Until(until)
		if left <= 0 {
			break
		}
		var wait int32
		if left >= time.Second {
			wait = 1
		}
		more, err := s.receive(ctx, src, min(src.batchSize-len(msgs), sqsMaxReceive), wait)
		if err != nil {
			break
		}
		if len(more) == 0 && wait == 0 && !sleepCtx(ctx, min(left, 100*time.Millisecond)) {
			break
		}
		msgs = append(msgs, more...)
	}
	return msgs
}

// sqsEvent is the payload Lambda sends a function for a batch of src's queue.
func sqsEvent(src *sqsSource, msgs []sqstypes.Message) []byte {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		attrs := make(map[string]events.SQSMessageAttribute, len(m.MessageAttributes))
		for k, v := range m.MessageAttributes {
			attrs[k] = events.SQSMessageAttribute{
				DataType:    aws.ToString(v.DataType),
				StringValue: v.StringValue,
				BinaryValue: v.BinaryValue,
				// Lambda writes empty lists, not null.
				StringListValues: append([]string{}, v.StringListValues...),
				BinaryListValues: append([][]byte{}, v.BinaryListValues...),
			}
		}
		sys := m.Attributes
		if sys == nil {
			sys = map[string]string{}
		}
		ev.Records[i] = events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             sys,
			MessageAttributes:      attrs,
			EventSourceARN:         src.queue.ARN,
			EventSource:            "aws:sqs",
			AWSRegion:              Region,
		}
	}
	b, _ := json.Marshal(ev)
	return b
}

// batchItemFailures reads a function's response as Lambda reads an SQSEventResponse:
// null, {} or an empty list mean every message succeeded; a response of another shape,
// or an itemIdentifier that is empty or not a message of the batch, fails the whole
// batch. It returns the ids of the messages that failed.
func batchItemFailures(payload []byte, msgs []sqstypes.Message) (map[string]bool, error) {
	var resp events.SQSEventResponse
	if len(bytes.TrimSpace(payload)) > 0 {
		if err := json.Unmarshal(payload, &resp); err != nil {
			return nil, fmt.Errorf("the response is not an SQSEventResponse, so the whole batch failed: %w", err)
		}
	}
	inBatch := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		inBatch[aws.ToString(m.MessageId)] = true
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if !inBatch[f.ItemIdentifier] {
			return nil, fmt.Errorf("batchItemFailures names itemIdentifier %q, which is not a message of the batch, so the whole batch failed", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, nil
}

// deleteMessages deletes handled messages from src's queue, ten at a time.
func (s *Stack) deleteMessages(ctx context.Context, src *sqsSource, msgs []sqstypes.Message) error {
	for chunk := range slices.Chunk(msgs, sqsMaxReceive) {
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		out, err := s.queues.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(src.queue.URL), Entries: entries})
		if err != nil {
			return fmt.Errorf("%s: delete handled messages: %w", src, err)
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("%s: delete handled messages: %d of %d failed, the first with %s: %s",
				src, len(out.Failed), len(entries), aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return nil
}

// PollQueues hands each SQS event source of the template one batch of what its queue
// holds now, one source after the other, as the pollers do but without waiting for
// messages or for MaximumBatchingWindowInSeconds. It works whether the pollers run or
// not; with Options.QueuePollInterval negative it is how tests deliver messages one
// batch at a time. Each invocation takes the front door's Lambda Invoke path: it
// counts as lambda.Invoke and Options.Faults applies. Handled messages are deleted;
// the others come back after the queue's visibility timeout, as in AWS.
//
// It returns how many messages the functions were handed, and the first failure of a
// batch: an injected fault, a function error (wrapping the function's
// messages.InvokeResponse_Error), a timeout, a response that fails the whole batch,
// or an SQS call that failed. Messages a function reports in batchItemFailures are not
// a failure of PollQueues. The remaining sources are still polled.
func (s *Stack) PollQueues(ctx context.Context) (int, error) {
	// Close ends the batches as it ends every other invocation.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.baseCtx, cancel)()
	total := 0
	var first error
	for _, src := range s.plan.sqsSources {
		n, err := s.pollBatch(ctx, src, 0, false)
		total += n
		if err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// DrainQueues returns once the queue of every SQS event source holds nothing: no
// message visible, in flight or delayed, seen twice in a row so that a message one
// function sends to another's queue just before its own is deleted is not missed.
// With Options.QueuePollInterval negative it hands out the batches itself, as
// PollQueues does; otherwise the pollers do.
//
// A message whose batch failed stays in flight for the queue's visibility timeout and
// is then tried again, so a queue drains only once such messages succeed or the
// queue's RedrivePolicy moves them to the dead-letter queue (moto moves a message on
// the first receive after it has been received maxReceiveCount times). DrainQueues
// does not wait on a dead-letter queue that is not itself an event source. A message
// that keeps failing on a queue without a RedrivePolicy keeps the queue from draining
// until ctx ends.
//
// It fails when ctx ends first, saying what each queue still holds, when Close ends
// the stack, or when a queue's counts cannot be read.
func (s *Stack) DrainQueues(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.baseCtx, cancel)()
	var busy []string
	quiet := 0
	for {
		now, err := s.queueBacklog(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("queues not drained (%s): %w", strings.Join(busy, "; "), ctx.Err())
			}
			return err
		}
		busy = now
		switch {
		case len(busy) == 0:
			quiet++
			if quiet == 2 {
				return nil
			}
		case s.opt.QueuePollInterval < 0:
			quiet = 0
			// Failed batches are what redelivery is for; the counts tell the rest.
			_, _ = s.PollQueues(ctx)
		default:
			quiet = 0
		}
		if !sleepCtx(ctx, drainCheck) {
			return fmt.Errorf("queues not drained (%s): %w", strings.Join(busy, "; "), ctx.Err())
		}
	}
}

// queueBacklog describes each event source queue that holds messages.
func (s *Stack) queueBacklog(ctx context.Context) ([]string, error) {
	var busy []string
	seen := map[string]bool{}
	for _, src := range s.plan.sqsSources {
		q := src.queue
		if seen[q.URL] {
			continue
		}
		seen[q.URL] = true
		out, err := s.queues.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q.URL),
			AttributeNames: []sqstypes.QueueAttributeName{
				sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("read the counts of queue %s: %w", q.LogicalID, err)
		}
		count := func(name sqstypes.QueueAttributeName) string {
			if v := out.Attributes[string(name)]; v != "" {
				return v
			}
			return "0"
		}
		visible := count(sqstypes.QueueAttributeNameApproximateNumberOfMessages)
		inFlight := count(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
		delayed := count(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)
		if visible != "0" || inFlight != "0" || delayed != "0" {
			busy = append(busy, fmt.Sprintf("%s: %s visible, %s in flight, %s delayed", q.LogicalID, visible, inFlight, delayed))
		}
	}
	return busy, nil
}
