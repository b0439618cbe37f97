package localstack

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"rate(1 minute)", time.Minute},
		{"rate(5 minutes)", 5 * time.Minute},
		{"rate(1 hour)", time.Hour},
		{"rate(2 hours)", 2 * time.Hour},
		{"rate(1 day)", 24 * time.Hour},
		{"rate(7 days)", 7 * 24 * time.Hour},
	} {
		c, err := parseScheduleExpression(tc.expr, time.UTC)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		if got := c.next(start).Sub(start); got != tc.want {
			t.Errorf("%s fires every %v, want %v", tc.expr, got, tc.want)
		}
	}
	for _, expr := range []string{
		"rate(0 minutes)",
		"rate(-1 minute)",
		"rate(1 minutes)",
		"rate(5 minute)",
		"rate(2 hour)",
		"rate(1.5 hours)",
		"rate(01 minute)",
		"rate(1  minute)",
		"rate(30 seconds)",
		"rate(1 week)",
		"rate(minute)",
		"rate()",
		"rate(99999999999 days)",
		"rate 1 minute",
		"every 5 minutes",
		"",
		"at(2030-01-02T03:04:05)",
	} {
		if _, err := parseScheduleExpression(expr, time.UTC); err == nil {
			t.Errorf("%q accepted, want it refused", expr)
		}
	}
}

func TestCronNext(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		expr  string
		loc   *time.Location
		after string
		want  string // "" means never
	}{
		{"cron(0 3 * * ? *)", time.UTC, "2030-01-02T05:00:00Z", "2030-01-03T03:00:00Z"},
		{"cron(0 3 * * ? *)", time.UTC, "2030-01-02T02:59:59Z", "2030-01-02T03:00:00Z"},
		{"cron(0 3 * * ? *)", time.UTC, "2030-01-02T03:00:00Z", "2030-01-03T03:00:00Z"},
		{"cron(*/15 * * * ? *)", time.UTC, "2030-01-02T10:07:00Z", "2030-01-02T10:15:00Z"},
		{"cron(5,35 8-9 * * ? *)", time.UTC, "2030-01-02T09:36:00Z", "2030-01-03T08:05:00Z"},
		// 2030-01-04 is a Friday.
		{"cron(0 9 ? * MON-FRI *)", time.UTC, "2030-01-04T10:00:00Z", "2030-01-07T09:00:00Z"},
		{"cron(0 9 ? * 1 *)", time.UTC, "2030-01-04T10:00:00Z", "2030-01-06T09:00:00Z"},
		{"cron(0 0 1 jan ? *)", time.UTC, "2030-06-01T00:00:00Z", "2031-01-01T00:00:00Z"},
		{"cron(0 0 29 2 ? *)", time.UTC, "2030-03-01T00:00:00Z", "2032-02-29T00:00:00Z"},
		{"cron(0 0 31 * ? *)", time.UTC, "2030-04-01T00:00:00Z", "2030-05-31T00:00:00Z"},
		{"cron(0 0 1 1 ? 2029)", time.UTC, "2030-01-02T00:00:00Z", ""},
		{"cron(0 9 * * ? *)", paris, "2030-01-02T10:00:00Z", "2030-01-03T08:00:00Z"},
		{"cron(0 9 * * ? *)", paris, "2030-07-02T10:00:00Z", "2030-07-03T07:00:00Z"},
	} {
		c, err := parseScheduleExpression(tc.expr, tc.loc)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got := c.next(utc(tc.after))
		switch {
		case tc.want == "" && !got.IsZero():
			t.Errorf("%s after %s = %v, want never", tc.expr, tc.after, got)
		case tc.want != "" && !got.Equal(utc(tc.want)):
			t.Errorf("%s after %s = %v, want %s", tc.expr, tc.after, got.UTC(), tc.want)
		}
	}
	for _, expr := range []string{
		"cron(0 3 * * * *)",    // neither day field is ?
		"cron(0 3 ? * ? *)",    // both are
		"cron(0 3 * *)",        // five fields
		"cron(0 3 L * ? *)",    // L
		"cron(0 3 ? * 6#3 *)",  // #
		"cron(0 3 15W * ? *)",  // W
		"cron(60 3 * * ? *)",   // out of range
		"cron(0 3 * 13 ? *)",   // out of range
		"cron(0 5-3 * * ? *)",  // backwards
		"cron(*/0 3 * * ? *)",  // no increment
		"cron(? 3 * * ? *)",    // ? in minutes
		"cron(0 3 * FOO ? *)",  // no such month
		"cron(0 3 * * ? 1969)", // before 1970
	} {
		if _, err := parseScheduleExpression(expr, time.UTC); err == nil {
			t.Errorf("%s accepted, want it refused", expr)
		}
	}
}

const scheduleTemplate = `
Parameters:
  Paused:
    Type: String
    Default: "false"
Resources:
  AFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/a/
      Events:
        EveryMinute:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Description: Starts what is due.
        Named:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Name: nightly
            Input: '{"kind":"nightly"}'
        Off:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Enabled: !Ref Paused
        Api:
          Type: HttpApi
          Properties:
            Path: /a
            Method: GET
  BFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/b/
      Events:
        Hourly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            Input: '{"at":"<aws.scheduler.scheduled-time>","arn":"<aws.scheduler.schedule-arn>"}'
        Stopped:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            State: DISABLED
  CFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/c/
`

func planOf(t *testing.T, tmpl string) (*plan, error) {
	t.Helper()
	tp, err := ParseTemplate([]byte(tmpl), nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return makePlan(tp)
}

func TestPlanSchedules(t *testing.T) {
	t.Parallel()
	p, err := planOf(t, scheduleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var got []Schedule
	for _, sc := range p.schedules {
		got = append(got, sc.Schedule)
	}
	want := []Schedule{
		{Function: "AFunction", Event: "EveryMinute", Expression: "rate(1 minute)", RuleARN: "arn:aws:events:us-east-1:123456789012:rule/turnover-local-AFunction-EveryMinute"},
		{Function: "AFunction", Event: "Named", Expression: "cron(0 3 * * ? *)", RuleARN: "arn:aws:events:us-east-1:123456789012:rule/nightly"},
		{Function: "BFunction", Event: "Hourly", Expression: "rate(1 hour)", RuleARN: "arn:aws:events:us-east-1:123456789012:rule/turnover-local-BFunction-Hourly"},
	}
	if len(got) != len(want) {
		t.Fatalf("schedules %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("schedule %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(p.routes) != 1 {
		t.Errorf("%d routes, want the HttpApi event's one", len(p.routes))
	}

	// A parameter turns the Enabled: !Ref Paused event on.
	tp, err := ParseTemplate([]byte(scheduleTemplate), map[string]string{"Paused": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = makePlan(tp); err != nil {
		t.Fatal(err)
	}
	if len(p.schedules) != 4 || p.schedules[2].Event != "Off" {
		t.Errorf("with Paused=true the schedules are %d, want Off enabled too", len(p.schedules))
	}
}

func TestPlanSchedulesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, props, want string }{
		{"bad rate", "Schedule: rate(5 minute)", "AFunction event E: Schedule: rate(5 minute)"},
		{"cron with L", "Schedule: cron(0 3 L * ? *)", "not supported locally"},
		{"at", "Schedule: at(2030-01-02T03:04:05)", "not supported locally"},
		{"no expression", "Description: nothing", "has no Schedule"},
		{"V2 reads ScheduleExpression", "Schedule: rate(1 minute)", "ScheduleV2 event has no ScheduleExpression"},
		{"input not JSON", "Schedule: rate(1 minute)\n            Input: '{nope'", "Input is not valid JSON"},
		{"enabled not boolean", "Schedule: rate(1 minute)\n            Enabled: sometimes", "Enabled"},
	} {
		typ := "Schedule"
		if strings.HasPrefix(tc.name, "V2") {
			typ = "ScheduleV2"
		}
		tmpl := `
Resources:
  AFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/a/
      Events:
        E:
          Type: ` + typ + `
          Properties:
            ` + tc.props + "\n"
		_, err := planOf(t, tmpl)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestScheduledEvent(t *testing.T) {
	t.Parallel()
	p, err := planOf(t, scheduleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("CET", 3600))
	wantTime := "2030-01-02T02:04:05Z"

	raw := p.schedules[0].scheduledEvent(at)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	for k, want := range map[string]string{
		"version":     `"0"`,
		"detail-type": `"Scheduled Event"`,
		"source":      `"aws.events"`,
		"account":     `"123456789012"`,
		"time":        `"` + wantTime + `"`,
		"region":      `"us-east-1"`,
		"resources":   `["arn:aws:events:us-east-1:123456789012:rule/turnover-local-AFunction-EveryMinute"]`,
		"detail":      `{}`,
	} {
		if got := string(fields[k]); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	if len(fields) != 9 {
		t.Errorf("payload has %d fields, want 9: %s", len(fields), raw)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.ID) != 36 || strings.Count(ev.ID, "-") != 4 {
		t.Errorf("id %q is not a UUID", ev.ID)
	}
	if other := p.schedules[0].scheduledEvent(at); string(other) == string(raw) {
		t.Error("two firings share an id")
	}

	// An EventBridge rule's Input goes as it is; EventBridge Scheduler fills in its
	// context attributes.
	if got := string(p.schedules[1].scheduledEvent(at)); got != `{"kind":"nightly"}` {
		t.Errorf("rule with Input sends %s", got)
	}
	want := `{"at":"` + wantTime + `","arn":"arn:aws:scheduler:us-east-1:123456789012:schedule/default/turnover-local-BFunction-Hourly"}`
	if got := string(p.schedules[2].scheduledEvent(at)); got != want {
		t.Errorf("ScheduleV2 with Input sends %s, want %s", got, want)
	}
}

func TestFireSchedulesOnlyFromLoopback(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/_local/schedules:fire", nil)
	r.RemoteAddr = "192.0.2.7:40000"
	w := httptest.NewRecorder()
	(&Stack{}).serveFireSchedules(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("status %d from another host, want 403", w.Code)
	}
}
