package localstack

import (
	"strings"
	"testing"
	"time"
)

const mappingTemplate = `
Parameters:
  Concurrency:
    Type: Number
    Default: 3
  Paused:
    Type: String
    Default: "false"
Resources:
  Work:
    Type: AWS::SQS::Queue
  Other:
    Type: AWS::SQS::Queue
    Properties: {QueueName: other}
  Table:
    Type: AWS::DynamoDB::Table
  Capped:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/capped/
      ReservedConcurrentExecutions: !Ref Concurrency
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/plain/
      Events:
        Both:
          Type: SQS
          Properties: {Queue: !GetAtt Work.Arn}
  ByName:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Work.Arn
      FunctionName: !Ref Capped
      BatchSize: 5
      MaximumBatchingWindowInSeconds: 2
      FunctionResponseTypes: [ReportBatchItemFailures]
      ScalingConfig: {MaximumConcurrency: !Ref Concurrency}
  ByARN:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Other.Arn
      FunctionName: !GetAtt Plain.Arn
  Off:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Other.Arn
      FunctionName: !Ref Capped
      Enabled: !Ref Paused
  Stream:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Table.StreamArn
      FunctionName: !Ref Plain
      StartingPosition: LATEST
`

// An AWS::Lambda::EventSourceMapping on a queue is run as the SAM SQS event would be:
// its function found by name or ARN, its settings read, its pollers capped by its
// ScalingConfig and the function's reserved concurrency.
func TestPlanEventSourceMappings(t *testing.T) {
	t.Parallel()
	p, err := planOf(t, mappingTemplate)
	if err != nil {
		t.Fatal(err)
	}
	type source struct {
		Function, Event, Queue, String string
		BatchSize, Pollers, Reserved   int
		Window                         time.Duration
		ReportFailures                 bool
	}
	var got []source
	for _, src := range p.sqsSources {
		got = append(got, source{src.Function, src.Event, src.queue.LogicalID, src.String(), src.batchSize, src.pollers, src.reserved, src.window, src.reportFailures})
	}
	want := []source{
		{"Capped", "ByName", "Work", "event source mapping ByName of Capped", 5, 3, 3, 2 * time.Second, true},
		{"Plain", "Both", "Work", "SQS event Both of Plain", 10, defaultSQSPollers, -1, 0, false},
		{"Plain", "ByARN", "Other", "event source mapping ByARN of Plain", 10, defaultSQSPollers, -1, 0, false},
	}
	if len(got) != len(want) {
		t.Fatalf("sources %+v, want %+v (the disabled mapping and the stream's left out)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("source %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Reserved concurrency under MaximumConcurrency caps the pollers, as Lambda's
	// throttling would; a parameter turns the Enabled: !Ref Paused mapping on.
	tp, err := ParseTemplate([]byte(strings.Replace(mappingTemplate, "ReservedConcurrentExecutions: !Ref Concurrency", "ReservedConcurrentExecutions: 2", 1)), map[string]string{"Paused": "true", "Concurrency": "4"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = makePlan(tp); err != nil {
		t.Fatal(err)
	}
	if len(p.sqsSources) != 4 {
		t.Fatalf("%d sources with Paused=true, want the Off mapping too", len(p.sqsSources))
	}
	for _, src := range p.sqsSources {
		if src.Function == "Capped" && (src.pollers != 2 || src.reserved != 2) {
			t.Errorf("%s: %d pollers, reserved %d; want MaximumConcurrency 4 capped at the reserved 2", src, src.pollers, src.reserved)
		}
	}
}

func TestPlanEventSourceMappingsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, props, want string }{
		{"unknown function", "FunctionName: nobody", "M.FunctionName nobody is not the name or ARN"},
		{"queue of another stack", "FunctionName: !Ref F\n      EventSourceArn: arn:aws:sqs:us-east-1:123456789012:elsewhere", "M: EventSourceArn arn:aws:sqs:us-east-1:123456789012:elsewhere is not the ARN of a queue"},
		{"filtered", "FunctionName: !Ref F\n      FilterCriteria: {Filters: [{Pattern: '{}'}]}", "FilterCriteria is not supported locally"},
		{"concurrency under 2", "FunctionName: !Ref F\n      ScalingConfig: {MaximumConcurrency: 1}", "ScalingConfig.MaximumConcurrency"},
		{"no function", "BatchSize: 1", "M.FunctionName"},
	} {
		tmpl := `
Resources:
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/f/
  M:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      ` + tc.props
		if !strings.Contains(tc.props, "EventSourceArn") {
			tmpl += "\n      EventSourceArn: !GetAtt Q.Arn"
		}
		_, err := planOf(t, tmpl+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}
