// Command bench measures one reset job on the local stack: it seeds users with a
// profile, resets them all with every option, and prints what the job cost in AWS calls
// (counted and traced at the front door), the depth of dependent calls per user, the
// state machine's history and payload sizes, and the cost per 1,000 users at AWS list
// prices. The last line is one JSON object with the figures.
//
//	bench [-users 200] [-profile heavy|light] [-batch 25]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"turnover/infra/localstack"
	"turnover/internal/app"
	"turnover/internal/demo"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

const domain = "benchcorp"

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	users := fs.Int("users", 200, "users to seed and reset")
	profileName := fs.String("profile", "heavy", "what each user owns: heavy or light")
	batch := fs.Int("batch", 25, "users per batch (the template's BatchSize)")
	dir := fs.String("dir", ".", "repository root")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the job to this file")
	logFile := fs.String("logs", "", "write the functions' logs to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	profile := demo.HeavyProfile
	switch *profileName {
	case "heavy":
	case "light":
		profile = demo.LightProfile
	default:
		return fmt.Errorf("profile must be heavy or light, not %q", *profileName)
	}
	if *users < 1 || *users > 100_000 {
		return fmt.Errorf("users must be 1 to 100000")
	}

	ctx := context.Background()
	var logs io.Writer = io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logs = f
	}
	fmt.Fprintf(out, "starting the local stack…\n")
	startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	stack, err := localstack.Start(startCtx, localstack.Options{
		Dir:           *dir,
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		ScheduleTick:  -1,
		Functions:     app.Functions,
		Parameters:    map[string]string{"BatchSize": fmt.Sprint(*batch)},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		FunctionLogs:  logs,
	})
	cancel()
	if err != nil {
		return err
	}
	defer stack.Close()

	fmt.Fprintf(out, "seeding %d users (%s profile: %d messages, %d greetings, %d rules, %d contacts, %d devices, 1 DID, a directory entry)…\n",
		*users, *profileName, profile.Messages, profile.Greetings, profile.Rules, profile.Contacts, profile.Devices)
	population := demo.Population(domain, 100000, *users, profile)
	if err := demo.SeedUsers(ctx, stack.AWS, stack.Resources.Tables["Table"], stack.Resources.Buckets["Bucket"], population); err != nil {
		return err
	}
	exts := make([]string, len(population))
	for i, d := range population {
		exts[i] = d.User.Extension
	}

	stack.ResetCalls()
	stack.ResetTrace()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	began := time.Now()
	jobID, err := startJob(ctx, stack, exts)
	if err != nil {
		return err
	}
	status, err := waitJob(ctx, stack, jobID)
	if err != nil {
		return err
	}
	took := time.Since(began)
	if status != "SUCCEEDED" {
		return fmt.Errorf("job %s ended %s", jobID, status)
	}
	trace := stack.Trace()
	history, err := parentHistory(ctx, stack, jobID)
	if err != nil {
		return err
	}
	f := measure(trace, history, len(exts), *batch, profile)
	f.print(out, len(exts), *batch, took)
	line, err := json.Marshal(f.Summary)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(line))
	return nil
}

// startJob starts an all-options reset of the users through the HTTP API, as the portal
// would, and returns the job id.
func startJob(ctx context.Context, stack *localstack.Stack, exts []string) (string, error) {
	tok, err := stack.Token(localstack.TokenClaims{Subject: "admin@" + domain, Domain: domain, Scope: "super_user"})
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]any{
		"users": exts, "confirm": true,
		"options": map[string]bool{
			"deleteVoicemailMessages": true, "deleteVoicemailGreetings": true, "deleteAnsweringRules": true,
			"deleteCustomContacts": true, "unassignPhoneNumbers": true, "removeDeviceLines": true,
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "POST", stack.APIURL+"/v1/domains/"+domain+"/resets", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", time.Now().UnixNano()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var job struct {
		ID string `json:"jobId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil || resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start job: %d %v", resp.StatusCode, err)
	}
	return job.ID, nil
}

// waitJob polls the job's execution until it ends.
func waitJob(ctx context.Context, stack *localstack.Stack, jobID string) (string, error) {
	client := sfn.NewFromConfig(stack.AWS)
	arn := executionARN(stack, jobID)
	deadline := time.Now().Add(60 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: &arn})
		if err != nil {
			return "", fmt.Errorf("job %s: %w", jobID, err)
		}
		if out.Status != "RUNNING" {
			return string(out.Status), nil
		}
		time.Sleep(time.Second)
	}
	return "", fmt.Errorf("job %s still running after an hour", jobID)
}

func executionARN(stack *localstack.Stack, jobID string) string {
	return strings.Replace(stack.Resources.StateMachines["ResetStateMachine"], ":stateMachine:", ":execution:", 1) + ":" + jobID
}

// event is what the figures need of one history event: its kind and the sizes of the
// state inputs and outputs it carries.
type event struct {
	Type    string
	Payload int
}

func parentHistory(ctx context.Context, stack *localstack.Stack, jobID string) ([]event, error) {
	client := sfn.NewFromConfig(stack.AWS)
	arn := executionARN(stack, jobID)
	var events []event
	p := sfn.NewGetExecutionHistoryPaginator(client, &sfn.GetExecutionHistoryInput{ExecutionArn: &arn, IncludeExecutionData: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", jobID, err)
		}
		for _, e := range page.Events {
			raw, _ := json.Marshal(e)
			var fields map[string]any
			_ = json.Unmarshal(raw, &fields)
			events = append(events, event{Type: string(e.Type), Payload: largestPayload(fields)})
		}
	}
	return events, nil
}

// largestPayload is the longest Input, Output, Parameters or Result string anywhere in
// an event's details.
func largestPayload(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && slices.Contains([]string{"Input", "Output", "Parameters", "Result"}, k) {
				n = max(n, len(s))
			}
			n = max(n, largestPayload(x))
		}
	case []any:
		for _, x := range v {
			n = max(n, largestPayload(x))
		}
	}
	return n
}

// Prices are AWS list prices in us-east-1 (USD) used for the cost per 1,000 users.
var prices = struct {
	DynamoWRU, DynamoRRU, S3Request, LambdaRequest, LambdaGBSecond, ExpressRequest, ExpressGBSecond, StandardTransition float64
}{
	DynamoWRU:          0.625 / 1e6,  // on-demand, per write request unit
	DynamoRRU:          0.125 / 1e6,  // on-demand, per read request unit
	S3Request:          0.005 / 1000, // PUT, COPY, POST, LIST class (DeleteObjects is a POST)
	LambdaRequest:      0.20 / 1e6,   // per invocation
	LambdaGBSecond:     0.0000133334, // arm64
	ExpressRequest:     1.00 / 1e6,   // Step Functions Express, per child execution
	ExpressGBSecond:    0.00001667,   // Express duration, first tier, billed per 64 MB
	StandardTransition: 0.025 / 1000, // Step Functions Standard, per state transition
}

// Summary is the bench's last line.
type Summary struct {
	CallsPerUser        float64 `json:"callsPerUser"`
	MinCallsPerUser     float64 `json:"minCallsPerUser"`
	Ratio               float64 `json:"ratio"`
	Depth               int     `json:"depth"`
	ParentHistoryEvents int     `json:"parentHistoryEvents"`
	MaxPayloadBytes     int     `json:"maxPayloadBytes"`
	CostPer1000USD      float64 `json:"costPer1000USD"`
}

type figures struct {
	Summary
	perOp        map[string]int // reset-path calls by service.operation
	writesPer    int            // item writes a user's reset needs besides the commit
	minArith     string
	resetInvokes int
	costParts    []string
}

// resetPath are the functions whose calls a job's users cost: the reset worker and the
// finalizer (the API's one-off calls to start the job are left out, as they do not grow
// with the users).
var resetPath = map[string]bool{"ResetFunction": true, "FinalizeFunction": true}

func measure(trace []localstack.TraceEntry, history []event, users, batch int, p demo.Profile) figures {
	f := figures{perOp: map[string]int{}}
	byInvocation := map[string][]localstack.TraceEntry{}
	total := 0
	for _, e := range trace {
		if !resetPath[e.Function] {
			continue
		}
		f.perOp[e.Service+"."+e.Operation]++
		total++
		if e.Function == "ResetFunction" {
			byInvocation[e.Invocation] = append(byInvocation[e.Invocation], e)
		}
	}
	f.resetInvokes = len(byInvocation)
	for _, calls := range byInvocation {
		f.Depth = max(f.Depth, depth(calls))
	}
	f.CallsPerUser = float64(total) / float64(users)

	// The least any design could do for this profile: read each user's items with one
	// Query, write them in BatchWriteItem calls of 25, delete a batch's audio in one
	// DeleteObjects call.
	f.writesPer = p.Messages + p.Greetings + p.Rules + p.Contacts + p.Devices + 2 /* DID out, number back */ + 1 /* directory entry */
	batches := math.Ceil(float64(users) / float64(batch))
	bwi := math.Ceil(float64(f.writesPer) / 25)
	f.MinCallsPerUser = 1 + bwi + batches/float64(users)
	f.minArith = fmt.Sprintf("1 Query + ⌈%d/25⌉ = %.0f BatchWriteItem + %.0f DeleteObjects / %d users = %.2f", f.writesPer, bwi, batches, users, f.MinCallsPerUser)
	f.Ratio = round(f.CallsPerUser/f.MinCallsPerUser, 3)
	f.CallsPerUser = round(f.CallsPerUser, 3)
	f.MinCallsPerUser = round(f.MinCallsPerUser, 3)

	f.ParentHistoryEvents = len(history)
	for _, e := range history {
		f.MaxPayloadBytes = max(f.MaxPayloadBytes, e.Payload)
	}

	// Cost of 1,000 users. Items are under 1 KB, so each item write is one write unit, and
	// each item in a transaction two. A user's Query reads its items strongly consistent:
	// one read unit per 4 KB, about 150 bytes an item.
	per := 1000.0
	txItems := 4.0 // lock, saved plan, profile, result per user; the counter is one per batch
	wru := per * (float64(f.writesPer) + 1 /* setup link */ + 2*txItems)
	rru := per * (math.Ceil(float64(f.writesPer+1)*150/4096) + 0.5 /* result read, eventually consistent */)
	batches1000 := math.Ceil(per / float64(batch))
	deleteObjects := batches1000 * math.Ceil(float64(batch*(p.Messages+p.Greetings))/1000)
	lambdaGBs := batches1000 * 0.25 * 1.0 // 256 MB for about a second a batch
	expressGBs := batches1000 * 0.064 * 1.0
	parts := []struct {
		name string
		usd  float64
	}{
		{fmt.Sprintf("DynamoDB %.0f WRU", wru), wru * prices.DynamoWRU},
		{fmt.Sprintf("DynamoDB %.0f RRU", rru), rru * prices.DynamoRRU},
		{fmt.Sprintf("S3 %.0f DeleteObjects", deleteObjects), deleteObjects * prices.S3Request},
		{fmt.Sprintf("Lambda %.0f invocations", batches1000+1), (batches1000+1)*prices.LambdaRequest + lambdaGBs*prices.LambdaGBSecond},
		{fmt.Sprintf("Step Functions %.0f Express children", batches1000), batches1000*prices.ExpressRequest + expressGBs*prices.ExpressGBSecond},
		{fmt.Sprintf("Step Functions %d Standard transitions", max(len(history)/2, 1)), float64(max(len(history)/2, 1)) * prices.StandardTransition},
	}
	for _, part := range parts {
		f.CostPer1000USD += part.usd
		f.costParts = append(f.costParts, fmt.Sprintf("%s $%.5f", part.name, part.usd))
	}
	f.CostPer1000USD = round(f.CostPer1000USD, 4)
	return f
}

// depth is the number of dependent rounds of calls in one invocation. Calls of one kind
// form a round while one of them is in flight (a bounded pool pipelines them); a round
// waits on another if it began only after that one ended. depth is the longest chain
// of rounds each waiting on the one before.
func depth(calls []localstack.TraceEntry) int {
	sort.Slice(calls, func(i, j int) bool { return calls[i].Start.Before(calls[j].Start) })
	type round struct {
		kind       string
		start, end time.Time
		depth      int
	}
	var rounds []*round
	open := map[string]*round{}
	for _, c := range calls {
		kind := c.Service + "." + c.Operation
		if r := open[kind]; r != nil && c.Start.Before(r.end) {
			r.end = later(r.end, c.End)
			continue
		}
		r := &round{kind: kind, start: c.Start, end: c.End}
		open[kind] = r
		rounds = append(rounds, r)
	}
	best := 0
	for j, b := range rounds {
		b.depth = 1
		for _, a := range rounds[:j] {
			if !a.end.After(b.start) {
				b.depth = max(b.depth, a.depth+1)
			}
		}
		best = max(best, b.depth)
	}
	return best
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func (f figures) print(out io.Writer, users, batch int, took time.Duration) {
	fmt.Fprintf(out, "\njob: %d users in batches of %d, %d reset invocations, %s on the local stack\n", users, batch, f.resetInvokes, took.Round(time.Second))
	fmt.Fprintf(out, "\nAWS calls of the reset path, per user:\n")
	ops := make([]string, 0, len(f.perOp))
	for op := range f.perOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		fmt.Fprintf(out, "  %-34s %6d  %7.3f\n", op, f.perOp[op], float64(f.perOp[op])/float64(users))
	}
	fmt.Fprintf(out, "  %-34s %6s  %7.3f\n", "total", "", f.CallsPerUser)
	fmt.Fprintf(out, "\nminimum for this profile: %s\n", f.minArith)
	fmt.Fprintf(out, "ratio: %.3f\n", f.Ratio)
	fmt.Fprintf(out, "dependent round trips per user (longest chain in one reset invocation): %d\n", f.Depth)
	fmt.Fprintf(out, "parent execution history events: %d\n", f.ParentHistoryEvents)
	fmt.Fprintf(out, "largest state input/output: %d bytes (limit 262,144)\n", f.MaxPayloadBytes)
	fmt.Fprintf(out, "cost per 1,000 users: $%.4f (%s)\n\n", f.CostPer1000USD, strings.Join(f.costParts, "; "))
}
