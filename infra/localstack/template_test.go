package localstack_test

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"turnover/infra/localstack"
	"turnover/internal/eventbus"
)

const testTemplate = `
Parameters:
  Stage:
    Type: String
    Default: dev
  Size:
    Type: Number
    Default: 25
  Zones:
    Type: CommaDelimitedList
    Default: "a, b"
  NoDefault:
    Type: String
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Mappings:
  Sizes:
    dev: {Memory: 128}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Named:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-named-${Stage}"
  Bucket:
    Type: AWS::S3::Bucket
  Fn:
    Type: AWS::Serverless::Function
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-machine"
  Unnamed:
    Type: AWS::Serverless::StateMachine
  Api:
    Type: AWS::Serverless::HttpApi
`

// tpl parses testTemplate with the parameter overrides.
func tpl(t *testing.T, params map[string]string) *localstack.Template {
	t.Helper()
	tp, err := localstack.ParseTemplate([]byte(testTemplate), params)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return tp
}

// expr parses one YAML value the way template values are parsed, short-form tags
// included.
func expr(t *testing.T, src string) any {
	t.Helper()
	doc := "Resources:\n  X:\n    Type: Test\n    Properties:\n      V: " + src + "\n"
	tp, err := localstack.ParseTemplate([]byte(doc), nil)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return tp.Resource("X").Properties["V"]
}

func TestResolve(t *testing.T) {
	const arn = "arn:aws:lambda:us-east-1:123456789012:function:"
	tests := []struct {
		name   string
		expr   string
		params map[string]string
		want   any
	}{
		{"ref parameter default", "!Ref Stage", nil, "dev"},
		{"ref parameter override", "!Ref Stage", map[string]string{"Stage": "prod"}, "prod"},
		{"ref number parameter is text", "!Ref Size", nil, "25"},
		{"ref list parameter", "!Ref Zones", nil, []any{"a", "b"}},
		{"ref long form", "{Ref: Stage}", nil, "dev"},
		{"ref stack name", "!Ref AWS::StackName", nil, "turnover-local"},
		{"ref region", "!Ref AWS::Region", nil, "us-east-1"},
		{"ref account", "!Ref AWS::AccountId", nil, "123456789012"},
		{"ref partition", "!Ref AWS::Partition", nil, "aws"},
		{"ref url suffix", "!Ref AWS::URLSuffix", nil, "amazonaws.com"},
		{"ref table", "!Ref Table", nil, "turnover-local-Table"},
		{"ref named table", "!Ref Named", nil, "turnover-local-named-dev"},
		{"ref named table follows parameter", "!Ref Named", map[string]string{"Stage": "qa"}, "turnover-local-named-qa"},
		{"ref bucket is lower case", "!Ref Bucket", nil, "turnover-local-bucket"},
		{"ref function", "!Ref Fn", nil, "Fn"},
		{"ref state machine is its ARN", "!Ref Machine", nil, "arn:aws:states:us-east-1:123456789012:stateMachine:turnover-local-machine"},
		{"ref unnamed state machine", "!Ref Unnamed", nil, "arn:aws:states:us-east-1:123456789012:stateMachine:turnover-local-Unnamed"},
		{"ref http api", "!Ref Api", nil, "local"},
		{"getatt short", "!GetAtt Fn.Arn", nil, arn + "Fn"},
		{"getatt list", "!GetAtt [Table, Arn]", nil, "arn:aws:dynamodb:us-east-1:123456789012:table/turnover-local-Table"},
		{"getatt long", "{Fn::GetAtt: [Bucket, Arn]}", nil, "arn:aws:s3:::turnover-local-bucket"},
		{"getatt state machine name", "!GetAtt Machine.Name", nil, "turnover-local-machine"},
		{"getatt state machine arn", "!GetAtt Machine.Arn", nil, "arn:aws:states:us-east-1:123456789012:stateMachine:turnover-local-machine"},
		{"sub with attribute", `!Sub "${Bucket.Arn}/jobs/*"`, nil, "arn:aws:s3:::turnover-local-bucket/jobs/*"},
		{"sub pseudo parameters", `!Sub "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-x"`, nil, "arn:aws:states:us-east-1:123456789012:stateMachine:turnover-local-x"},
		{"sub literal", `!Sub "${!Literal}-${Stage}"`, nil, "${Literal}-dev"},
		{"sub list form", `!Sub ["${A}-${Stage}-${B}", {A: !Ref Table, B: !GetAtt Fn.Arn}]`, nil, "turnover-local-Table-dev-" + arn + "Fn"},
		{"sub long form", `{Fn::Sub: "${Table}"}`, nil, "turnover-local-Table"},
		{"join", `!Join [":", [a, !Ref Stage, !Ref Size]]`, nil, "a:dev:25"},
		{"join long form", `{Fn::Join: ["", [x, {Ref: Stage}]]}`, nil, "xdev"},
		{"select", `!Select [1, [a, b, c]]`, nil, "b"},
		{"select over a list parameter", `!Select [0, !Ref Zones]`, nil, "a"},
		{"split", `!Split [",", "a,b"]`, nil, []any{"a", "b"}},
		{"if false", `!If [IsProd, big, small]`, nil, "small"},
		{"if true", `!If [IsProd, big, small]`, map[string]string{"Stage": "prod"}, "big"},
		{"if not", `!If [NotProd, yes, no]`, nil, "yes"},
		{"find in map", `!FindInMap [Sizes, !Ref Stage, Memory]`, nil, 128},
		{"base64", `!Base64 hi`, nil, "aGk="},
		{"no value drops the key", `{A: !Ref AWS::NoValue, B: b}`, nil, map[string]any{"B": "b"}},
		{"nested", `[!Ref Stage, {K: !GetAtt Fn.Arn}]`, nil, []any{"dev", map[string]any{"K": arn + "Fn"}}},
		{"plain values", `{S: s, N: 3, F: 1.5, B: true}`, nil, map[string]any{"S": "s", "N": 3, "F": 1.5, "B": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tpl(t, tt.params).Resolve(expr(t, tt.expr))
			if err != nil {
				t.Fatalf("resolve %s: %v", tt.expr, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resolve %s = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestResolveFails(t *testing.T) {
	for _, src := range []string{
		"!Ref Missing",
		"!Ref NoDefault",
		"!GetAtt Missing.Arn",
		"!GetAtt Fn.Nope",
		`!Sub "${Missing}"`,
		`!Sub "${Stage"`,
		"!If [NoSuchCondition, a, b]",
		"!ImportValue other",
		"!Select [5, [a]]",
	} {
		t.Run(src, func(t *testing.T) {
			if got, err := tpl(t, nil).Resolve(expr(t, src)); err == nil {
				t.Errorf("resolve %s = %#v, want an error", src, got)
			}
		})
	}
}

func TestParseTemplateRejectsUndeclaredParameter(t *testing.T) {
	if _, err := localstack.ParseTemplate([]byte(testTemplate), map[string]string{"Nope": "x"}); err == nil {
		t.Fatal("want an error for an undeclared parameter override")
	}
}

// The real template and state machine: every substitution resolves and the result is
// JSON the way Step Functions reads it.
func TestRenderDefinitionOfTheRealStateMachine(t *testing.T) {
	defs, err := localstack.RenderDefinitions("../..", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 1 || defs[0].LogicalID != "ResetStateMachine" || defs[0].File != "reset-users.asl.json" {
		t.Fatalf("definitions %+v, want ResetStateMachine from reset-users.asl.json", defs)
	}
	text := string(defs[0].JSON)
	if strings.Contains(text, "${") {
		t.Errorf("definition still holds a substitution:\n%s", text)
	}
	type task struct {
		Resource   string
		Parameters struct{ FunctionName string }
	}
	var def struct {
		States struct {
			ResetBatches struct {
				MaxConcurrency             any
				ToleratedFailurePercentage any
				ItemReader                 struct{ Resource string }
				ItemProcessor              struct {
					ProcessorConfig struct{ ExecutionType string }
					States          struct{ ResetBatch task }
				}
			}
			FinalizeJob, FinalizeFailedJob task
		}
	}
	if err := json.Unmarshal(defs[0].JSON, &def); err != nil {
		t.Fatalf("definition is not JSON: %v", err)
	}
	rb := def.States.ResetBatches
	// The service integrations' ARNs take the stack's partition, which is aws locally.
	raw, err := os.ReadFile("../../statemachine/reset-users.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "arn:aws:") {
		t.Error("reset-users.asl.json names the aws partition; take it from ${Partition}")
	}
	for _, c := range []struct{ name, got, want string }{
		{"item reader", rb.ItemReader.Resource, "arn:aws:states:::s3:getObject"},
		{"reset batch task", rb.ItemProcessor.States.ResetBatch.Resource, "arn:aws:states:::lambda:invoke"},
		{"finalize task", def.States.FinalizeJob.Resource, "arn:aws:states:::lambda:invoke"},
		{"finalize failed job task", def.States.FinalizeFailedJob.Resource, "arn:aws:states:::lambda:invoke"},
		{"reset function", rb.ItemProcessor.States.ResetBatch.Parameters.FunctionName, "arn:aws:lambda:us-east-1:123456789012:function:ResetFunction"},
		{"finalize function", def.States.FinalizeJob.Parameters.FunctionName, "arn:aws:lambda:us-east-1:123456789012:function:FinalizeFunction"},
		{"child execution type (template default)", rb.ItemProcessor.ProcessorConfig.ExecutionType, "EXPRESS"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if _, ok := rb.MaxConcurrency.(float64); !ok {
		t.Errorf("MaxConcurrency = %#v, want a JSON number", rb.MaxConcurrency)
	}
	if _, ok := rb.ToleratedFailurePercentage.(float64); !ok {
		t.Errorf("ToleratedFailurePercentage = %#v, want a JSON number", rb.ToleratedFailurePercentage)
	}

	local, err := localstack.RenderDefinition("../..", "ResetStateMachine", map[string]string{"ChildExecutionType": "STANDARD"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(local), `"ExecutionType": "STANDARD"`) {
		t.Errorf("parameter override not substituted:\n%s", local)
	}
}

// Every Ref and GetAtt in the real template resolves locally.
func TestRealTemplateResolves(t *testing.T) {
	tp, err := localstack.LoadTemplate("../..", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resources map[string]yaml.Node
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for id := range doc.Resources {
		r := tp.Resource(id)
		if r == nil {
			t.Errorf("resource %s not parsed", id)
			continue
		}
		if _, err := tp.Resolve(r.Properties); err != nil {
			t.Errorf("resolve %s: %v", id, err)
		}
	}
}

// statements returns the statements of a function's inline policies, resolved, whose
// actions start with prefix.
func statements(t *testing.T, tp *localstack.Template, fn, prefix string) []map[string]any {
	t.Helper()
	r := tp.Resource(fn)
	if r == nil {
		t.Fatalf("template has no %s", fn)
	}
	rp, err := tp.Resolve(r.Properties["Policies"])
	if err != nil {
		t.Fatalf("%s.Policies: %v", fn, err)
	}
	policies, _ := rp.([]any)
	var out []map[string]any
	for _, p := range policies {
		pm, ok := p.(map[string]any)
		if !ok || pm["Statement"] == nil {
			t.Errorf("%s has policy %v, want inline statements only (a managed or SAM policy grants more)", fn, p)
			continue
		}
		stmts, _ := pm["Statement"].([]any)
		for _, s := range stmts {
			sm, _ := s.(map[string]any)
			for _, a := range actions(sm) {
				if strings.HasPrefix(a, prefix) {
					out = append(out, sm)
					break
				}
			}
		}
	}
	return out
}

func actions(stmt map[string]any) []string {
	switch a := stmt["Action"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, e := range a {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// The mailer's trigger is an explicit event source mapping, not a SAM SQS event, so
// that SAM attaches no AWSLambdaSQSQueueExecutionRole (SQS rights on every queue); its
// pollers are capped at the concurrency the mailer reserves and divides MailRate by,
// all three from one parameter, so that Lambda never throttles the queue's own
// batches into the dead-letter queue.
func TestMailerTriggerAndPermissions(t *testing.T) {
	tp, err := localstack.LoadTemplate("../..", nil)
	if err != nil {
		t.Fatal(err)
	}
	mailer := tp.Resource("MailerFunction")
	if mailer == nil {
		t.Fatal("template has no MailerFunction")
	}
	events, _ := mailer.Properties["Events"].(map[string]any)
	for name, ev := range events {
		if em, _ := ev.(map[string]any); em["Type"] == "SQS" {
			t.Errorf("MailerFunction has SQS event %s: SAM would grant it AWSLambdaSQSQueueExecutionRole", name)
		}
	}
	queueARN, err := tp.ResolveString(map[string]any{"Fn::GetAtt": []any{"MailQueue", "Arn"}})
	if err != nil {
		t.Fatal(err)
	}

	var mapping *localstack.Resource
	for _, r := range tp.ResourcesOfType("AWS::Lambda::EventSourceMapping") {
		fn, err := tp.ResolveString(r.Properties["FunctionName"])
		if err != nil {
			t.Fatalf("%s.FunctionName: %v", r.LogicalID, err)
		}
		if fn == "MailerFunction" || fn == localstack.FunctionARN("MailerFunction") {
			if mapping != nil {
				t.Fatalf("MailerFunction has event source mappings %s and %s, want one", mapping.LogicalID, r.LogicalID)
			}
			mapping = r
		}
	}
	if mapping == nil {
		t.Fatal("no AWS::Lambda::EventSourceMapping invokes MailerFunction")
	}
	rp, err := tp.Resolve(mapping.Properties)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(rp)
	var props struct {
		EventSourceArn                 string
		BatchSize                      int
		MaximumBatchingWindowInSeconds int
		FunctionResponseTypes          []string
		ScalingConfig                  struct{ MaximumConcurrency json.Number }
		FilterCriteria                 any
		Enabled                        *bool
	}
	if err := json.Unmarshal(got, &props); err != nil {
		t.Fatalf("%s: %v in %s", mapping.LogicalID, err, got)
	}
	if props.EventSourceArn != queueARN || props.BatchSize != 10 || props.MaximumBatchingWindowInSeconds != 1 ||
		!reflect.DeepEqual(props.FunctionResponseTypes, []string{"ReportBatchItemFailures"}) ||
		props.FilterCriteria != nil || (props.Enabled != nil && !*props.Enabled) {
		t.Errorf("%s is %s; want MailQueue, BatchSize 10, MaximumBatchingWindowInSeconds 1, ReportBatchItemFailures, enabled, unfiltered", mapping.LogicalID, got)
	}
	if n, err := props.ScalingConfig.MaximumConcurrency.Int64(); err != nil || n < 2 {
		t.Errorf("%s ScalingConfig.MaximumConcurrency %q, want a number of at least 2 (the least SQS allows)", mapping.LogicalID, props.ScalingConfig.MaximumConcurrency)
	}

	// One source for the pollers' cap, the reserved concurrency and the share of the
	// rate each instance takes.
	env, _ := mailer.Properties["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	sc, _ := mapping.Properties["ScalingConfig"].(map[string]any)
	source := sc["MaximumConcurrency"]
	if ref, _ := source.(map[string]any); ref["Ref"] == nil && ref["Fn::FindInMap"] == nil {
		t.Errorf("ScalingConfig.MaximumConcurrency is %v, want a Ref to a parameter or a FindInMap", source)
	}
	for name, v := range map[string]any{
		"MailerFunction.ReservedConcurrentExecutions":   mailer.Properties["ReservedConcurrentExecutions"],
		"MailerFunction environment's MAIL_CONCURRENCY": vars["MAIL_CONCURRENCY"],
	} {
		if !reflect.DeepEqual(v, source) {
			t.Errorf("%s is %v, want %v, as the mapping's ScalingConfig.MaximumConcurrency", name, v, source)
		}
	}

	// Exactly what Lambda's pollers need, on the mail queue only.
	sqsStmts := statements(t, tp, "MailerFunction", "sqs:")
	if len(sqsStmts) != 1 {
		t.Fatalf("MailerFunction has %d statements with SQS actions, want 1", len(sqsStmts))
	}
	if got, want := actions(sqsStmts[0]), []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}; !reflect.DeepEqual(got, want) ||
		sqsStmts[0]["Resource"] != queueARN || sqsStmts[0]["Effect"] != "Allow" {
		t.Errorf("MailerFunction's SQS statement is %v, want %v on %s only", sqsStmts[0], want, queueARN)
	}
}

// Finalize may put only the event it announces, of the source it announces it from.
func TestFinalizePutsOnlyItsEvent(t *testing.T) {
	tp, err := localstack.LoadTemplate("../..", nil)
	if err != nil {
		t.Fatal(err)
	}
	stmts := statements(t, tp, "FinalizeFunction", "events:")
	if len(stmts) != 1 || !reflect.DeepEqual(actions(stmts[0]), []string{"events:PutEvents"}) {
		t.Fatalf("FinalizeFunction's EventBridge statements %v, want one with events:PutEvents", stmts)
	}
	cond, _ := stmts[0]["Condition"].(map[string]any)
	want := map[string]any{"StringEquals": map[string]any{"events:source": eventbus.Source, "events:detail-type": eventbus.DetailTypeJobCompleted}}
	if !reflect.DeepEqual(cond, want) {
		t.Errorf("events:PutEvents condition %v, want %v", cond, want)
	}
}
