package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"turnover/infra/localstack"
	"turnover/internal/demo"
	"turnover/internal/turnover"
)

// allOptions selects every option but recycle.
var allOptions = map[string]any{
	"deleteVoicemailMessages": true, "deleteVoicemailGreetings": true, "deleteAnsweringRules": true,
	"deleteCustomContacts": true, "unassignPhoneNumbers": true, "removeDeviceLines": true,
}

// seedPopulation seeds n users of the light profile into a new domain, with shared
// contacts and spare numbers beside them, and returns the domain and the users.
func seedPopulation(t *testing.T, prefix string, n int) (string, []turnover.UserData) {
	t.Helper()
	domain := fmt.Sprintf("%s%d", prefix, domainSeq.Add(1))
	users := demo.Population(domain, 3000, n, demo.LightProfile)
	ctx := context.Background()
	if err := demo.SeedUsers(ctx, stack.AWS, stack.Resources.Tables["Table"], stack.Resources.Buckets["Bucket"], users); err != nil {
		t.Fatal(err)
	}
	if err := store().PutSharedContacts(ctx, domain, demo.SharedContacts); err != nil {
		t.Fatal(err)
	}
	if err := store().PutAvailableNumbers(ctx, domain, demo.AvailableNumbers); err != nil {
		t.Fatal(err)
	}
	return domain, users
}

// startJob starts a reset and returns its id without waiting.
func startJob(t *testing.T, tok, domain string, body map[string]any) string {
	t.Helper()
	var started job
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets", body, &started); status != http.StatusAccepted {
		t.Fatalf("start reset: status %d, %+v", status, started)
	}
	return started.JobID
}

// waitExecution waits for a job's execution to end, through the SDK (which retries what
// faults throttle), and returns its status.
func waitExecution(t *testing.T, jobID string, within time.Duration) sfntypes.ExecutionStatus {
	t.Helper()
	arn := executionARN(jobID)
	client := sfn.NewFromConfig(stack.AWS)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := client.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: &arn})
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			return out.Status
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s still running after %s", jobID, within)
	return ""
}

func executionARN(jobID string) string {
	return strings.Replace(stack.Resources.StateMachines["ResetStateMachine"], ":stateMachine:", ":execution:", 1) + ":" + jobID
}

// owner says whose a snapshot key is: the extension of domain it belongs to, "" for the
// domain's shared things, and ok false for keys of other domains.
func owner(key, domain string, numbers map[string]string) (ext string, ok bool) {
	f := strings.Fields(key) // "item PK SK" or "object KEY"
	switch {
	case f[0] == "object":
		parts := strings.Split(f[1], "/") // audio/{domain}/{ext}/…
		if len(parts) > 2 && parts[1] == domain {
			return parts[2], true
		}
	case strings.HasPrefix(f[1], "USER#"+domain+"#"):
		return strings.TrimPrefix(f[1], "USER#"+domain+"#"), true
	case f[1] == "DIR#"+domain:
		return f[2][strings.LastIndex(f[2], "#")+1:], true
	case f[1] == "NUM#"+domain:
		return numbers[f[2]], true
	case strings.HasSuffix(f[1], "#"+domain):
		return "", true
	}
	return "", false
}

// mailbox counts the sent messages to each address.
func mailbox(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(stack.APIURL + "/_local/mail")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var box struct{ Messages []mailMessage }
	if err := json.NewDecoder(resp.Body).Decode(&box); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range box.Messages {
		for _, to := range m.To {
			n[to]++
		}
	}
	return n
}

// The chaos run: a 500-user job while DynamoDB, S3 and Lambda fail at the given rates.
// Every selected user is reset exactly once, nothing unselected or shared changes, and
// every new person gets exactly one welcome email.
func TestChaosJobLosesNothingAndRepeatsNothing(t *testing.T) {
	const seeded, selected, recycled = 520, 500, 40
	const spec = "dynamodb=0.10,s3=0.05,lambda=0.05,seed=20261122"
	domain, users := seedPopulation(t, "chaos", seeded)
	numbers := map[string]string{}
	var exts []string
	for _, d := range users {
		numbers[d.Numbers[0]] = d.User.Extension
		exts = append(exts, d.User.Extension)
	}
	var rows []map[string]any
	for i, ext := range exts[:recycled] {
		rows = append(rows, map[string]any{"extension": ext, "firstName": "New", "lastName": fmt.Sprintf("Hire%03d", i),
			"email": fmt.Sprintf("new.hire%03d@%s.example", i, domain), "department": "Sales", "sendWelcomeEmail": true})
	}
	opts := map[string]any{"recycle": true}
	for k, v := range allOptions {
		opts[k] = v
	}
	before := takeSnapshot(t)
	mailBefore := mailbox(t)

	faults, err := localstack.ParseFaults(spec)
	if err != nil {
		t.Fatal(err)
	}
	previous := stack.Faults()
	stack.ResetCalls()
	tok := token(t, domain, "super_user")
	jobID := startJob(t, tok, domain, map[string]any{"users": exts[:selected], "options": opts, "recycle": rows, "confirm": true})
	stack.SetFaults(faults)
	status := waitExecution(t, jobID, 8*time.Minute)
	stack.SetFaults(previous)
	trace := stack.Trace()
	if status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("execution %s, want SUCCEEDED", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.DrainQueues(ctx); err != nil {
		t.Fatal(err)
	}

	// Every selected user reset exactly once, with what the seeded profile held.
	j, err := store().GetJob(context.Background(), domain, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != turnover.JobSucceeded || j.Total != selected || j.Done != selected || j.Failed != 0 {
		t.Errorf("job = %s total %d done %d failed %d, want SUCCEEDED with %d done", j.Status, j.Total, j.Done, j.Failed, selected)
	}
	results, err := store().ListResults(context.Background(), domain, jobID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"voicemailMessages": 2, "voicemailGreetings": 1, "answeringRules": 2, "customContacts": 3, "phoneNumbers": 1, "deviceLines": 2}
	got := map[string]bool{}
	for _, r := range results {
		wantOutcome := turnover.OutcomeRecyclePending
		if slices.Contains(exts[:recycled], r.Extension) {
			wantOutcome = turnover.OutcomeRecycled
		}
		if got[r.Extension] || r.Outcome != wantOutcome || fmt.Sprint(r.Deleted) != fmt.Sprint(want) {
			t.Errorf("result of %s = %+v (seen before: %v), want %s deleting %v", r.Extension, r, got[r.Extension], wantOutcome, want)
		}
		got[r.Extension] = true
	}
	if len(got) != selected {
		t.Errorf("%d users have a result, want %d", len(got), selected)
	}

	// Nothing of an unselected user, nothing shared, nothing of another domain changed.
	unselected := 0
	for _, c := range changes(before, takeSnapshot(t)) {
		ext, ours := owner(c[2:], domain, numbers)
		if !ours || !slices.Contains(exts[:selected], ext) {
			unselected++
			t.Errorf("changed, and not a selected user's: %s", c)
		}
	}

	// One welcome email per new person, none to anyone else.
	mail := mailbox(t)
	duplicates := 0
	for i := range recycled {
		to := fmt.Sprintf("new.hire%03d@%s.example", i, domain)
		if n := mail[to] - mailBefore[to]; n != 1 {
			t.Errorf("%s got %d welcome emails, want 1", to, n)
			duplicates += max(n-1, 0)
		}
	}

	// The report: what was injected and how the job got through it.
	invocations := map[string]bool{}
	for _, e := range trace {
		if e.Function == "ResetFunction" {
			invocations[e.Invocation] = true
		}
	}
	injected := 0
	for _, n := range faults.Injected() {
		injected += n
	}
	batches := (selected + 24) / 25
	t.Logf("chaos: 1 job, %d users (%d recycled), %s: %d faults injected %v, each retried by the SDK or the state machine; "+
		"%d reset invocations for %d batches (%d batch retries); duplicates: %d; unselected changes: %d",
		selected, recycled, spec, injected, faults.Injected(), len(invocations), batches, len(invocations)-batches, duplicates, unselected)
	if len(faults.Injected()) == 0 {
		t.Errorf("no fault was injected: the run proves nothing")
	}
}

// A permanent error (access denied) is never retried: not by the SDK, not by the batch,
// not by the state machine.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	domain := freshDomain(t, "denied")
	tok := tokenFor(t, domain)
	previous := stack.Faults()
	stack.ResetCalls()
	// Starting the job writes no BatchWriteItem, so only the worker meets the fault.
	stack.SetFaults(localstack.FaultFunc(func(c localstack.Call) *localstack.Fault {
		if c.Service == "dynamodb" && c.Operation == "BatchWriteItem" {
			return &localstack.Fault{Status: 400, Code: "AccessDeniedException", Message: "not authorized to perform dynamodb:BatchWriteItem"}
		}
		return nil
	}))
	jobID := startJob(t, tok, domain, map[string]any{"users": []string{"1009"}, "options": allOptions, "confirm": true})
	status := waitExecution(t, jobID, 2*time.Minute)
	stack.SetFaults(previous)
	attempts, invocations := 0, map[string]bool{}
	for _, e := range stack.Trace() {
		if e.Function == "ResetFunction" {
			invocations[e.Invocation] = true
			if e.Operation == "BatchWriteItem" {
				attempts++
			}
		}
	}
	if len(invocations) != 1 || attempts == 0 || attempts > 4 {
		t.Errorf("%d reset invocations made %d BatchWriteItem calls; want one invocation and no call tried again", len(invocations), attempts)
	}
	// On AWS the Map then fails (one batch of one is past the tolerated 5%) and the
	// execution with it; moto's Map ignores ToleratedFailurePercentage, so only the job
	// says how it went.
	t.Logf("execution %s", status)
	j := waitJob(t, tok, domain, jobID)
	if j.Status == "SUCCEEDED" || j.Done != 0 {
		t.Errorf("job = %+v, want it not to succeed, with nobody done", j)
	}
}

// A worker killed in the middle of a user's deletes, then retried by the state machine,
// leaves the same end state as a clean run, and the same results: each user's status and
// the counts of what was deleted.
func TestCrashedWorkerConvergesToACleanRun(t *testing.T) {
	crashed, clean := freshDomain(t, "crashed"), freshDomain(t, "clean")
	users := []string{"1000", "1001", "1002", "1004", "1005", "1006", "1007", "1009"}
	if err := stack.ArmCrash(localstack.Crash{Function: "reset", Operation: "dynamodb.BatchWriteItem", AfterCalls: 1, Times: 1}); err != nil {
		t.Fatal(err)
	}
	crashesBefore := len(stack.Crashes())
	j := runResetIn(t, tokenFor(t, crashed), crashed, map[string]any{"users": users, "options": allOptions, "confirm": true})
	stack.DisarmCrashes()
	if n := len(stack.Crashes()) - crashesBefore; n != 1 {
		t.Fatalf("%d workers crashed, want 1", n)
	}
	if j.Status != "SUCCEEDED" || j.Done != len(users) {
		t.Errorf("crashed job = %+v, want SUCCEEDED with every user done once", j)
	}
	k := runResetIn(t, tokenFor(t, clean), clean, map[string]any{"users": users, "options": allOptions, "confirm": true})
	if k.Status != "SUCCEEDED" || k.Done != len(users) {
		t.Errorf("clean job = %+v", k)
	}
	crashedResults, cleanResults := resultsOf(j), resultsOf(k)
	if len(cleanResults) != len(users) {
		t.Errorf("the clean job has %d results, want %d", len(cleanResults), len(users))
	}
	for _, ext := range users {
		if got, want := crashedResults[ext], cleanResults[ext]; got != want {
			t.Errorf("result of %s after the crash = %s, want the clean run's %s", ext, got, want)
		}
	}
	after := takeSnapshot(t)
	normalized := func(domain string) map[string]string {
		out := map[string]string{}
		for k, v := range after {
			if !strings.Contains(k, domain) {
				continue
			}
			// The job id differs, and so do the hashes of the random secrets each seeding
			// gives the users it leaves alone.
			v = regexp.MustCompile(`"(resetJob|passwordHash|pinHash)":"[^"]*"`).ReplaceAllString(v, "")
			out[strings.ReplaceAll(k, domain, "D")] = strings.ReplaceAll(v, domain, "D")
		}
		return out
	}
	a, b := normalized(crashed), normalized(clean)
	if len(a) == 0 {
		t.Fatal("nothing of the crashed domain in the snapshot")
	}
	for _, c := range changes(b, a) {
		t.Errorf("the crashed run differs from the clean one: %s", c)
	}
}

// resultsOf is each user's result in a job, its status and deleted counts, by extension.
func resultsOf(j job) map[string]string {
	out := map[string]string{}
	for _, u := range j.Users {
		out[u.Extension] = u.Status + " " + fmt.Sprint(u.Deleted)
	}
	return out
}

// audioVersionsOf counts the versions and delete markers of a user's audio objects.
func audioVersionsOf(t *testing.T, domain, ext string) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectVersionsPaginator(s3.NewFromConfig(stack.AWS), &s3.ListObjectVersionsInput{
		Bucket: aws.String(stack.Resources.Buckets["Bucket"]), Prefix: aws.String("audio/" + domain + "/" + ext + "/"),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Versions) + len(out.DeleteMarkers)
	}
	return n
}

// S3 failing a batch's audio deletes (503 SlowDown, more times than the SDK retries a
// call) fails that try of the batch before any item is deleted; the state machine's
// retry deletes every selected audio object and records the counts the preview showed.
func TestFailedAudioDeletesLoseNoAudioAndNoCounts(t *testing.T) {
	domain := freshDomain(t, "audiofail")
	tok := tokenFor(t, domain)
	users, untouched := []string{"1002", "1009"}, "1005"
	var preview struct {
		Users []struct {
			Extension  string         `json:"extension"`
			WillDelete map[string]int `json:"willDelete"`
		} `json:"users"`
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets:preview", map[string]any{"users": users, "options": allOptions}, &preview); status != http.StatusOK {
		t.Fatalf("preview: status %d", status)
	}
	want := map[string]string{}
	for _, u := range preview.Users {
		want[u.Extension] = "reset " + fmt.Sprint(u.WillDelete)
	}
	for _, ext := range users {
		if n := audioVersionsOf(t, domain, ext); n == 0 {
			t.Fatalf("%s has no audio to delete: the test proves nothing", ext)
		}
	}
	kept := audioVersionsOf(t, domain, untouched)

	// The SDK tries a call 3 times, so the batch's first try fails; the retry's call
	// fails once more, then the SDK gets it through.
	const failures, sdkAttempts = 4, 3
	var failed atomic.Int32
	previous := stack.Faults()
	stack.SetFaults(localstack.FaultFunc(func(c localstack.Call) *localstack.Fault {
		if c.Service == "s3" && c.Operation == "DeleteObjects" && failed.Add(1) <= failures {
			return &localstack.Fault{Delay: 300 * time.Millisecond, Status: http.StatusServiceUnavailable, Code: "SlowDown", Message: "Please reduce your request rate."}
		}
		return nil
	}))
	j := runResetIn(t, tok, domain, map[string]any{"users": users, "options": allOptions, "confirm": true})
	stack.SetFaults(previous)
	if failed.Load() < sdkAttempts {
		t.Fatalf("DeleteObjects was called %d times: no try of the batch failed, the test proves nothing", failed.Load())
	}
	if j.Status != "SUCCEEDED" || j.Done != len(users) {
		t.Errorf("job = %+v, want SUCCEEDED with every user done", j)
	}
	got := resultsOf(j)
	for _, ext := range users {
		if got[ext] != want[ext] {
			t.Errorf("result of %s = %s, want the preview's %s", ext, got[ext], want[ext])
		}
		if n := audioVersionsOf(t, domain, ext); n != 0 {
			t.Errorf("%d audio objects of %s are left", n, ext)
		}
	}
	if n := audioVersionsOf(t, domain, untouched); n != kept {
		t.Errorf("%s, not in the job, has %d audio objects, had %d", untouched, n, kept)
	}
}

// Nothing personal reaches the state machine's history or the functions' logs: names,
// emails, setup tokens and passwords of a recycled user stay out of both.
func TestNoPersonalDataInHistoryOrLogs(t *testing.T) {
	domain := freshDomain(t, "pii")
	tok := tokenFor(t, domain)
	logStart, err := functionLogs.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	const first, last, email = "Zebulon", "Quimby-Marsh", "zebulon.quimby@pii.example"
	const password = "saffron-teapot-93"
	j := runResetIn(t, tok, domain, map[string]any{
		"users": []string{"1009", "1002"}, "options": map[string]any{"recycle": true, "deleteCustomContacts": true}, "confirm": true,
		"recycle": []any{map[string]any{"extension": "1009", "firstName": first, "lastName": last, "email": email, "department": "Cargo", "sendWelcomeEmail": true}},
	})
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	_, link := mailTo(t, email)
	if status, body := complete(t, link, password, "2580"); status != 200 {
		t.Fatalf("setup: %d %s", status, body)
	}
	token := link.Query().Get("auth_code")
	if len(token) < 20 {
		t.Fatalf("no token in the link %s", link)
	}
	forbidden := []string{first, last, email, token, url.QueryEscape(token), password}
	for _, d := range demo.UsersOf(domain) {
		if d.User.Extension == "1009" || d.User.Extension == "1002" {
			forbidden = append(forbidden, d.User.FirstName, d.User.LastName, d.User.Email)
		}
	}
	check := func(where, text string) {
		t.Helper()
		for _, f := range forbidden {
			if strings.Contains(strings.ToLower(text), strings.ToLower(f)) {
				t.Errorf("%s holds %q:\n%s", where, f, clip([]byte(text)))
			}
		}
	}

	// The whole history of the job's execution and of every child the Map ran.
	client := sfn.NewFromConfig(stack.AWS)
	var arns []string
	p := sfn.NewListExecutionsPaginator(client, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stack.Resources.StateMachines["ResetStateMachine"])})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Executions {
			if strings.Contains(aws.ToString(e.ExecutionArn), j.JobID) {
				arns = append(arns, aws.ToString(e.ExecutionArn))
			}
		}
	}
	events := 0
	for _, arn := range arns {
		h := sfn.NewGetExecutionHistoryPaginator(client, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), IncludeExecutionData: aws.Bool(true)})
		for h.HasMorePages() {
			out, err := h.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range out.Events {
				b, _ := json.Marshal(e)
				check("history of "+arn, string(b))
				events++
			}
		}
	}
	if events == 0 {
		t.Fatal("no history read")
	}

	// Every log line the functions wrote since the job started: the API's, the reset
	// worker's, the finalizer's and the mailer's.
	f, err := os.Open(functionLogs.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(logStart, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	lines, ours := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines++
		if strings.Contains(sc.Text(), domain) {
			ours++
		}
		check("a function's log line", sc.Text())
	}
	if ours == 0 {
		t.Fatalf("no log line of %s among %d: the check saw nothing", domain, lines)
	}
	t.Logf("%d history events of %d executions and %d log lines (%d of this domain) hold no personal data", events, len(arns), lines, ours)
}
