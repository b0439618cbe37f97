package e2e_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestUsersFilters(t *testing.T) {
	tok := tokenFor(t, "niftywidgets")
	tests := []struct {
		query string
		want  string
	}{
		{"q=tam", "1004 1005"},
		{"q=TAM", "1004 1005"},
		{"q=100", "1000 1001 1002 1003 1004 1005 1006 1007 1009"},
		{"q=1007", "1007"},
		{"scope=office_manager", "1003"},
		{"scope=call_center_agent", "1004"},
		{"department=Operations", "1001 1006"},
		{"status=active&department=Sales", "1000"},
		{"q=washburne&scope=basic_user", "1001 1006"},
	}
	for _, tt := range tests {
		var body struct{ Users []user }
		if status := doIn(t, tok, "GET", "/v1/domains/niftywidgets/users?"+tt.query, nil, &body); status != 200 {
			t.Fatalf("%s: status %d", tt.query, status)
		}
		var got []string
		for _, u := range body.Users {
			if u.Extension != "1009" || u.FirstName != "" { // 1009 may have been reset by another test
				got = append(got, u.Extension)
			}
		}
		if strings.Join(got, " ") != tt.want && !(tt.query == "q=100" && strings.Join(got, " ") == strings.TrimSuffix(tt.want, " 1009")) {
			t.Errorf("%s = %v, want %s", tt.query, got, tt.want)
		}
	}
	for _, bad := range []string{"scope=admin", "status=gone", "limit=0", "limit=1001", "cursor=xyz"} {
		if status := doIn(t, tok, "GET", "/v1/domains/niftywidgets/users?"+bad, nil, &struct{}{}); status != 400 {
			t.Errorf("%s: status %d, want 400", bad, status)
		}
	}
}

func TestReportAndRetry(t *testing.T) {
	domain := freshDomain(t, "report")
	tok := tokenFor(t, domain)
	j := runResetIn(t, tok, domain, map[string]any{"users": []string{"1009", "1002"}, "options": map[string]any{"deleteVoicemailMessages": true}, "confirm": true})
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	req, _ := http.NewRequest("GET", stack.APIURL+"/v1/domains/"+domain+"/resets/"+j.JobID+"/report.csv", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("report: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	raw, _ := io.ReadAll(resp.Body)
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil {
		t.Fatalf("report is not CSV: %v\n%s", err, raw)
	}
	if len(rows) != 3 {
		t.Fatalf("report has %d rows, want a header and 2 users:\n%s", len(rows), raw)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		if row[col["startedBy"]] != "1003@"+domain || row[col["status"]] != "reset" || row[col["voicemailMessages"]] != "5" || row[col["options"]] != "deleteVoicemailMessages" {
			t.Errorf("report row = %v", row)
		}
	}
	for _, secret := range []string{"Malcom", "Reynolds", "Kaylee", "@" + domain + ".example"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the report holds personal data %q", secret)
		}
	}
	var e struct{ Error struct{ Code string } }
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets/"+j.JobID+":retry", nil, &e); status != 422 {
		t.Errorf("retry of a job with no failures: %d %+v, want 422", status, e)
	}
}

func TestFinishedJobIsAnnounced(t *testing.T) {
	ctx := context.Background()
	queue, err := sqs.NewFromConfig(stack.AWS).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("turnover-events-test")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sqs.NewFromConfig(stack.AWS).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	eb := eventbridge.NewFromConfig(stack.AWS)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("turnover-jobs"), EventPattern: aws.String(`{"source":["turnover"],"detail-type":["ResetJobCompleted"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("turnover-jobs"), Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatal(err)
	}
	domain := freshDomain(t, "events")
	j := runResetIn(t, tokenFor(t, domain), domain, map[string]any{"users": []string{"1009"}, "options": map[string]any{}, "confirm": true})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs, err := sqs.NewFromConfig(stack.AWS).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs.Messages {
			var ev struct {
				Source     string `json:"source"`
				DetailType string `json:"detail-type"`
				Detail     map[string]any
			}
			body := aws.ToString(m.Body)
			if err := json.Unmarshal([]byte(body), &ev); err != nil {
				t.Fatalf("event %q: %v", body, err)
			}
			if ev.Detail["jobId"] != j.JobID {
				continue
			}
			if ev.Source != "turnover" || ev.DetailType != "ResetJobCompleted" || ev.Detail["domain"] != domain ||
				ev.Detail["status"] != "SUCCEEDED" || ev.Detail["total"] != 1.0 || ev.Detail["done"] != 1.0 || ev.Detail["failed"] != 0.0 {
				t.Errorf("event = %s", body)
			}
			if len(ev.Detail) != 6 || strings.Contains(body, "Reynolds") || strings.Contains(body, "@") {
				t.Errorf("the event carries more than ids and counts: %s", body)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no ResetJobCompleted event for job %s", j.JobID)
}
