package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"turnover/infra/localstack"
	"turnover/internal/demo"
	"turnover/internal/reset"
	"turnover/internal/turnover"
)

// Each option on its own, on a fresh copy of the demo domain: exactly that option's data
// and the always-removed parts go; every other item and object, in every domain, stays
// as it was.

// snapshot is every item of the table but the records of requests themselves (jobs,
// idempotency keys, mail markers), and every audio object of the bucket.
type snapshot map[string]string

func takeSnapshot(t *testing.T) snapshot {
	t.Helper()
	return snapshotOf(t, false)
}

// snapshotAll is every item and object, jobs and manifests included.
func snapshotAll(t *testing.T) snapshot {
	t.Helper()
	return snapshotOf(t, true)
}

func snapshotOf(t *testing.T, withJobs bool) snapshot {
	t.Helper()
	ctx := context.Background()
	snap := snapshot{}
	p := dynamodb.NewScanPaginator(dynamodb.NewFromConfig(stack.AWS), &dynamodb.ScanInput{TableName: aws.String(stack.Resources.Tables["Table"])})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(item, &m); err != nil {
				t.Fatal(err)
			}
			pk := m["pk"].(string)
			if !withJobs && (strings.HasPrefix(pk, "JOB#") || strings.HasPrefix(pk, "IDEM#") || strings.HasPrefix(pk, "MAIL#")) {
				continue // a request's own records, not user data
			}
			b, _ := json.Marshal(m) // map keys are sorted: a stable digest of the item
			snap["item "+pk+" "+m["sk"].(string)] = string(b)
		}
	}
	prefix := aws.String("audio/")
	if withJobs {
		prefix = nil
	}
	op := s3.NewListObjectsV2Paginator(s3.NewFromConfig(stack.AWS), &s3.ListObjectsV2Input{Bucket: aws.String(stack.Resources.Buckets["Bucket"]), Prefix: prefix})
	for op.HasMorePages() {
		out, err := op.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); strings.HasPrefix(k, "audio/") || withJobs {
				snap["object "+k] = aws.ToString(o.ETag)
			}
		}
	}
	return snap
}

// changes lists what differs between two snapshots: "- key" gone, "+ key" new, "~ key"
// changed, sorted.
func changes(before, after snapshot) []string {
	var out []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			out = append(out, "- "+k)
		} else if w != v {
			out = append(out, "~ "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, "+ "+k)
		}
	}
	slices.Sort(out)
	return out
}

// expectedChanges is what resetting ext of domain with opts must change, worked out from
// the seeded demo data independently of the reset engine. A recycle row, when given,
// puts its new name into the directory.
func expectedChanges(domain, ext string, opts turnover.ResetOptions, row *turnover.NewIdentity) []string {
	var d turnover.UserData
	for _, u := range demo.UsersOf(domain) {
		if u.User.Extension == ext {
			d = u
		}
	}
	pk := "item USER#" + domain + "#" + ext + " "
	out := []string{
		"~ " + pk + "PROFILE",
		"- item DIR#" + domain + " " + turnover.DirectoryDigits(d.User.FirstName, d.User.LastName) + "#" + ext,
	}
	if opts.Recycle && row != nil {
		out = append(out, "+ item DIR#"+domain+" "+turnover.DirectoryDigits(row.FirstName, row.LastName)+"#"+ext)
	}
	for _, dev := range d.Devices {
		if dev.Kind == turnover.DeviceSoftPhone || opts.RemoveDeviceLines {
			out = append(out, "- "+pk+"DEV#"+dev.ID)
		}
	}
	if opts.DeleteVoicemailMessages {
		for _, m := range d.Voicemail {
			out = append(out, "- "+pk+"VM#"+m.Folder+"#"+m.ID, "- object "+m.AudioKey)
		}
	}
	if opts.DeleteVoicemailGreetings {
		for _, g := range d.Greetings {
			out = append(out, "- "+pk+"GR#"+g.ID, "- object "+g.AudioKey)
		}
	}
	if opts.DeleteAnsweringRules {
		for _, r := range d.Rules {
			if !r.Default { // the seeded default rule is the one put back, unchanged
				out = append(out, "- "+pk+"AR#"+r.ID)
			}
		}
	}
	if opts.DeleteCustomContacts {
		for _, c := range d.Contacts {
			out = append(out, "- "+pk+"CT#"+c.ID)
		}
	}
	if opts.UnassignPhoneNumbers {
		for _, n := range d.Numbers {
			out = append(out, "- "+pk+"DID#"+n, "~ item NUM#"+domain+" "+n)
		}
	}
	slices.Sort(out)
	return out
}

var domainSeq atomic.Int32

// freshDomain seeds a new copy of the demo domain and returns its name.
func freshDomain(t *testing.T, prefix string) string {
	t.Helper()
	domain := fmt.Sprintf("%s%d", prefix, domainSeq.Add(1))
	if err := demo.SeedDomain(context.Background(), stack.AWS, stack.Resources.Tables["Table"], stack.Resources.Buckets["Bucket"], domain); err != nil {
		t.Fatal(err)
	}
	return domain
}

func optionsJSON(o turnover.ResetOptions) map[string]any {
	var m map[string]any
	b, _ := json.Marshal(o)
	_ = json.Unmarshal(b, &m)
	return m
}

// previewOf asks for the confirmation screen of a reset body and returns, per extension,
// what it says each selected option would delete.
func previewOf(t *testing.T, tok, domain string, body map[string]any) map[string]map[string]int {
	t.Helper()
	var preview struct {
		Users []struct {
			Extension  string
			Found      bool
			WillDelete map[string]int
		}
	}
	req := maps.Clone(body)
	delete(req, "confirm")
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets:preview", req, &preview); status != 200 {
		t.Fatalf("preview: %d", status)
	}
	out := map[string]map[string]int{}
	for _, u := range preview.Users {
		if !u.Found {
			t.Fatalf("the preview does not find %s", u.Extension)
		}
		out[u.Extension] = u.WillDelete
	}
	return out
}

func TestEachOptionDeletesExactlyItsData(t *testing.T) {
	// 1009 as seeded: 5 messages, 3 greetings, 3 rules, 2 contacts, 1 DID, and three
	// devices (desk phone line, soft phone, mobile app).
	ann := &turnover.NewIdentity{Extension: "1009", FirstName: "Ann", LastName: "Lee", Email: "ann.lee@example.com", Department: "Sales"}
	tests := []struct {
		name    string
		opts    turnover.ResetOptions
		row     *turnover.NewIdentity // the request's recycle row
		deleted map[string]int        // the counts the preview and the job must show
	}{
		{"none", turnover.ResetOptions{}, nil, map[string]int{}},
		{"deleteVoicemailMessages", turnover.ResetOptions{DeleteVoicemailMessages: true}, nil, map[string]int{"voicemailMessages": 5}},
		{"deleteVoicemailGreetings", turnover.ResetOptions{DeleteVoicemailGreetings: true}, nil, map[string]int{"voicemailGreetings": 3}},
		{"deleteAnsweringRules", turnover.ResetOptions{DeleteAnsweringRules: true}, nil, map[string]int{"answeringRules": 3}},
		{"deleteCustomContacts", turnover.ResetOptions{DeleteCustomContacts: true}, nil, map[string]int{"customContacts": 2}},
		{"unassignPhoneNumbers", turnover.ResetOptions{UnassignPhoneNumbers: true}, nil, map[string]int{"phoneNumbers": 1}},
		{"removeDeviceLines", turnover.ResetOptions{RemoveDeviceLines: true}, nil, map[string]int{"deviceLines": 3}},
		{"recycle", turnover.ResetOptions{Recycle: true}, ann, map[string]int{}},
		{"all", turnover.ResetOptions{DeleteVoicemailMessages: true, DeleteVoicemailGreetings: true, DeleteAnsweringRules: true,
			DeleteCustomContacts: true, UnassignPhoneNumbers: true, RemoveDeviceLines: true}, nil,
			map[string]int{"voicemailMessages": 5, "voicemailGreetings": 3, "answeringRules": 3, "customContacts": 2, "phoneNumbers": 1, "deviceLines": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domain := freshDomain(t, "opt")
			tok := tokenFor(t, domain)
			body := map[string]any{"users": []string{"1009"}, "options": optionsJSON(tt.opts), "confirm": true}
			if tt.row != nil {
				body["recycle"] = []map[string]any{{"extension": tt.row.Extension, "firstName": tt.row.FirstName, "lastName": tt.row.LastName,
					"email": tt.row.Email, "department": tt.row.Department}}
			}
			before := takeSnapshot(t)
			preview := previewOf(t, tok, domain, body)["1009"]
			if !maps.Equal(preview, tt.deleted) {
				t.Errorf("preview shows %v, want %v", preview, tt.deleted)
			}
			j := runResetIn(t, tok, domain, body)
			if j.Status != "SUCCEEDED" || j.Done != 1 {
				t.Fatalf("job = %+v", j)
			}
			if !maps.Equal(j.Users[0].Deleted, preview) || !maps.Equal(j.Users[0].Deleted, tt.deleted) {
				t.Errorf("result deleted = %v; the preview showed %v, want %v", j.Users[0].Deleted, preview, tt.deleted)
			}
			got, want := changes(before, takeSnapshot(t)), expectedChanges(domain, "1009", tt.opts, tt.row)
			if !slices.Equal(got, want) {
				t.Errorf("the reset changed\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			data, _, err := store().LoadUserData(context.Background(), domain, "1009")
			if err != nil {
				t.Fatal(err)
			}
			u := data.User
			var wantName turnover.NewIdentity // a reset leaves no name, a recycle row's name
			if tt.row != nil {
				wantName = *tt.row
			}
			if u.FirstName != wantName.FirstName || u.LastName != wantName.LastName || u.Email != wantName.Email ||
				u.PasswordHash+u.VoicemailPINHash != "" || u.Status != turnover.StatusSetupRequired {
				t.Errorf("profile after reset = %+v, want %q %q %q waiting for setup, with no password or PIN", u, wantName.FirstName, wantName.LastName, wantName.Email)
			}
			if tt.row != nil && (u.Department != tt.row.Department || j.Users[0].Status != "recycled") {
				t.Errorf("department %q, result %q; want %q and recycled", u.Department, j.Users[0].Status, tt.row.Department)
			}
			if tt.opts.DeleteAnsweringRules && (len(data.Rules) != 1 || !data.Rules[0].Default || data.Rules[0].Action != reset.DefaultRule.Action) {
				t.Errorf("rules = %+v, want exactly the default rule", data.Rules)
			}
		})
	}
}

func TestPreviewCountsMatchTheReset(t *testing.T) {
	domain := freshDomain(t, "preview")
	tok := tokenFor(t, domain)
	all := turnover.ResetOptions{DeleteVoicemailMessages: true, DeleteVoicemailGreetings: true, DeleteAnsweringRules: true,
		DeleteCustomContacts: true, UnassignPhoneNumbers: true, RemoveDeviceLines: true}
	var preview struct {
		Users []struct {
			Extension  string
			Found      bool
			WillDelete map[string]int
		}
		Totals map[string]int
	}
	body := map[string]any{"users": []string{"1002", "1009"}, "options": optionsJSON(all)}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets:preview", body, &preview); status != 200 {
		t.Fatalf("preview: %d", status)
	}
	for _, u := range preview.Users {
		for _, k := range []string{"voicemailMessages", "voicemailGreetings", "answeringRules", "customContacts", "phoneNumbers", "deviceLines"} {
			if u.WillDelete[k] == 0 {
				t.Errorf("preview of %s shows no %s", u.Extension, k)
			}
		}
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets", body, &e); status != 422 || !strings.Contains(e.Error.Message, "preview") {
		t.Errorf("unconfirmed reset: %d %+v, want 422 pointing at the preview", status, e)
	}
	body["confirm"] = true
	j := runResetIn(t, tok, domain, body)
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	for i, u := range j.Users {
		if u.Extension != preview.Users[i].Extension || !maps.Equal(u.Deleted, preview.Users[i].WillDelete) {
			t.Errorf("%s: reset deleted %v, preview showed %v", u.Extension, u.Deleted, preview.Users[i].WillDelete)
		}
	}
}

func TestRecycleInTheSameJob(t *testing.T) {
	domain := freshDomain(t, "recycle")
	tok := tokenFor(t, domain)
	var dir struct {
		Entries []struct{ Extension, FirstName, LastName string }
	}
	j := runResetIn(t, tok, domain, map[string]any{
		"users":   []string{"1000", "1002"},
		"options": map[string]any{"recycle": true},
		"recycle": []map[string]any{{"extension": "1000", "firstName": "Ann", "lastName": "Lee", "email": "ann.lee@example.com", "department": "Sales"}},
		"confirm": true,
	})
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	status := map[string]string{}
	for _, u := range j.Users {
		status[u.Extension] = u.Status
	}
	if status["1000"] != "recycled" || status["1002"] != "recycle_pending" {
		t.Errorf("results = %v, want 1000 recycled and 1002 recycle_pending", status)
	}
	var u user
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/1000", nil, &u)
	if u.FirstName != "Ann" || u.LastName != "Lee" || u.Email != "ann.lee@example.com" || u.Department != "Sales" || u.Status != "setup_required" {
		t.Errorf("1000 = %+v, want Ann Lee waiting for setup", u)
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/directory?digits=533", nil, &dir)
	if len(dir.Entries) != 1 || dir.Entries[0].Extension != "1000" || dir.Entries[0].FirstName != "Ann" {
		t.Errorf("directory at 533 = %+v, want Ann Lee at 1000", dir.Entries)
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/directory?digits="+turnover.KeypadDigits("Serra"), nil, &dir)
	if len(dir.Entries) != 0 {
		t.Errorf("Inara Serra is still in the directory: %+v", dir.Entries)
	}
	data, _, err := store().LoadUserData(context.Background(), domain, "1000")
	if err != nil {
		t.Fatal(err)
	}
	if data.User.PasswordHash != "" || data.User.VoicemailPINHash != "" {
		t.Errorf("the recycled extension kept the old password or PIN")
	}
}

// directoryLookup is the extensions GET /directory finds for digits, in its order.
func directoryLookup(t *testing.T, tok, domain, digits string) []string {
	t.Helper()
	var dir struct{ Entries []struct{ Extension string } }
	if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/directory?digits="+digits, nil, &dir); status != 200 {
		t.Fatalf("directory: %d", status)
	}
	var exts []string
	for _, e := range dir.Entries {
		exts = append(exts, e.Extension)
	}
	return exts
}

func TestDirectoryAndNumbersFollowTheReset(t *testing.T) {
	domain := freshDomain(t, "dir")
	tok := tokenFor(t, domain)
	lookup := func() []string { return directoryLookup(t, tok, domain, "3793") }
	if got := lookup(); fmt.Sprint(got) != "[1002]" {
		t.Fatalf("Frye's digits before the reset find %v, want [1002]", got)
	}
	j := runResetIn(t, tok, domain, map[string]any{"users": []string{"1002"}, "options": map[string]any{"unassignPhoneNumbers": true}, "confirm": true})
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	if got := lookup(); len(got) != 0 {
		t.Errorf("Frye's digits after the reset find %v", got)
	}
	var inv struct {
		Numbers []struct {
			Number, Status string
			Extension      *string
		}
	}
	doIn(t, tok, "GET", "/v1/domains/"+domain+"/numbers", nil, &inv)
	found := false
	for _, n := range inv.Numbers {
		if n.Number == "+15555550102" {
			found = true
			if n.Status != "available" || n.Extension != nil {
				t.Errorf("1002's number after the reset = %+v, want available", n)
			}
		}
		if n.Number == "+15555550109" && (n.Status != "assigned" || n.Extension == nil || *n.Extension != "1009") {
			t.Errorf("1009's number changed: %+v", n)
		}
	}
	if !found {
		t.Errorf("1002's number left the inventory")
	}
}

// invokeReset runs the reset function the way the state machine does.
func invokeReset(t *testing.T, in reset.BatchInput) (reset.BatchOutput, string) {
	t.Helper()
	payload, _ := json.Marshal(in)
	out, err := lambda.NewFromConfig(stack.AWS).Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(localstack.FunctionARN(stack.Resources.Functions["ResetFunction"])), Payload: payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res reset.BatchOutput
	if aws.ToString(out.FunctionError) == "" {
		if err := json.Unmarshal(out.Payload, &res); err != nil {
			t.Fatal(err)
		}
	}
	return res, string(out.Payload)
}

func TestRetriedBatchAndMissingUser(t *testing.T) {
	ctx := context.Background()
	domain := freshDomain(t, "retry")
	if err := store().CreateJob(ctx, turnover.Job{Domain: domain, ID: "retry-job", Status: turnover.JobRunning, Total: 3, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	in := reset.BatchInput{Domain: domain, JobID: "retry-job", Options: turnover.ResetOptions{DeleteCustomContacts: true},
		Batch: turnover.Batch{Users: []string{"1001", "4242", "1002"}}}
	first, raw := invokeReset(t, in)
	if first.Done != 2 || first.Failed != 1 {
		t.Fatalf("first run = %+v (%s), want 2 done and the missing user failed alone", first, raw)
	}
	afterFirst := takeSnapshot(t)
	second, raw := invokeReset(t, in)
	if second.Done != 0 || second.Failed != 0 {
		t.Errorf("the retried batch recorded again: %+v (%s)", second, raw)
	}
	if c := changes(afterFirst, takeSnapshot(t)); len(c) != 0 {
		t.Errorf("the retried batch changed %v", c)
	}
	job, err := store().GetJob(ctx, domain, "retry-job")
	if err != nil {
		t.Fatal(err)
	}
	results, err := store().ListResults(ctx, domain, "retry-job")
	if err != nil {
		t.Fatal(err)
	}
	if job.Done != 2 || job.Failed != 1 || len(results) != 3 {
		t.Errorf("job counts %d done, %d failed, %d results; want 2, 1, 3", job.Done, job.Failed, len(results))
	}
	for _, r := range results {
		if r.Extension == "4242" && (r.Outcome != turnover.OutcomeFailed || !strings.Contains(r.Error, "does not exist")) {
			t.Errorf("missing user's result = %+v", r)
		}
	}
}

// Through the API: a job naming an extension the domain does not have resets the others,
// and the missing one fails alone with a reason.
func TestMissingUserFailsAloneInAJob(t *testing.T) {
	domain := freshDomain(t, "missing")
	j := runResetIn(t, tokenFor(t, domain), domain, map[string]any{"users": []string{"1001", "4242"}, "options": map[string]any{}, "confirm": true})
	if j.Status != "PARTIALLY_FAILED" || j.Done != 1 || j.Failed != 1 || len(j.Users) != 2 {
		t.Fatalf("job = %+v, want PARTIALLY_FAILED with 1001 reset and 4242 failed", j)
	}
	if u := j.Users[0]; u.Extension != "1001" || u.Status != "reset" {
		t.Errorf("1001 = %+v, want reset", u)
	}
	if u := j.Users[1]; u.Extension != "4242" || u.Status != "failed" || u.Error == nil || !strings.Contains(*u.Error, "does not exist") {
		t.Errorf("4242 = %+v, want failed: does not exist", u)
	}
}

func TestTwoJobsRacingOnOneUser(t *testing.T) {
	domain := freshDomain(t, "race")
	tok := tokenFor(t, domain)
	// Slow every commit down so that the first job still holds 1009 when the second
	// reaches it.
	slowCommits.Store(true)
	defer slowCommits.Store(false)
	body := map[string]any{"users": []string{"1009"}, "options": map[string]any{"deleteCustomContacts": true}, "confirm": true}
	var a, b job
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets", body, &a); status != 202 {
		t.Fatalf("first job: %d", status)
	}
	if status := doIn(t, tok, "POST", "/v1/domains/"+domain+"/resets", body, &b); status != 202 {
		t.Fatalf("second job: %d", status)
	}
	ja, jb := waitJob(t, tok, domain, a.JobID), waitJob(t, tok, domain, b.JobID)
	outcomes := []string{ja.Users[0].Status, jb.Users[0].Status}
	slices.Sort(outcomes)
	if fmt.Sprint(outcomes) != "[failed reset]" {
		t.Fatalf("outcomes = %v, want one reset and one failed", outcomes)
	}
	for _, j := range []job{ja, jb} {
		if j.Users[0].Status == "failed" && (j.Users[0].Error == nil || !strings.Contains(*j.Users[0].Error, "another job")) {
			t.Errorf("the losing job's error = %v, want one naming the other job", j.Users[0].Error)
		}
		if j.Done+j.Failed != 1 {
			t.Errorf("job %s counts %d done, %d failed", j.JobID, j.Done, j.Failed)
		}
	}
	data, _, err := store().LoadUserData(context.Background(), domain, "1009")
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Contacts) != 0 || data.User.Status != turnover.StatusSetupRequired {
		t.Errorf("1009 after the race = %+v with %d contacts", data.User, len(data.Contacts))
	}
}

func TestVersionedBucketLeavesNoAudio(t *testing.T) {
	ctx := context.Background()
	domain := freshDomain(t, "versions")
	tok := tokenFor(t, domain)
	api := s3.NewFromConfig(stack.AWS)
	bucket := aws.String(stack.Resources.Buckets["Bucket"])
	if _, err := api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	defer api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusSuspended}})
	greeting := demo.UsersOf(domain)[8].Greetings[0].AudioKey
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(greeting), Body: strings.NewReader("re-recorded")}); err != nil {
		t.Fatal(err)
	}
	j := runResetIn(t, tok, domain, map[string]any{"users": []string{"1009"}, "options": map[string]any{"deleteVoicemailGreetings": true, "deleteVoicemailMessages": true}, "confirm": true})
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job = %+v", j)
	}
	out, err := api.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket, Prefix: aws.String("audio/" + domain + "/1009/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions)+len(out.DeleteMarkers) != 0 {
		t.Errorf("%d versions and %d delete markers of 1009's audio remain", len(out.Versions), len(out.DeleteMarkers))
	}
	kept, err := api.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket, Prefix: aws.String("audio/" + domain + "/1002/")})
	if err != nil || len(kept.Versions) != 8 {
		t.Errorf("1002's audio: %d versions (%v), want its 8 objects untouched", len(kept.Versions), err)
	}
}

// phonesOf lists a domain's desk phones through the API.
func phonesOf(t *testing.T, tok, domain string) []turnover.Phone {
	t.Helper()
	var body struct {
		Phones []struct {
			MAC, Model, Label string
			Lines             []string
		}
	}
	if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/phones", nil, &body); status != 200 {
		t.Fatalf("phones: %d", status)
	}
	phones := make([]turnover.Phone, len(body.Phones))
	for i, p := range body.Phones {
		if p.Lines == nil {
			t.Errorf("phone %s has lines null, want a list", p.MAC)
		}
		phones[i] = turnover.Phone{MAC: p.MAC, Model: p.Model, Label: p.Label, Lines: p.Lines}
	}
	return phones
}

// Hoban (1001) and Zoe (1006) share the conference-room phone. Removing Hoban's device
// lines takes his lines off both his desk phone and the shared one; both phones stay in
// the inventory, and Zoe's line stays on the shared phone.
func TestRemoveDeviceLinesKeepsSharedPhones(t *testing.T) {
	domain := freshDomain(t, "phones")
	tok := tokenFor(t, domain)
	const hobansDesk, shared = "00:04:f2:00:10:01", "00:04:f2:00:20:01"
	before := phonesOf(t, tok, domain)
	if got, want := fmt.Sprint(before), fmt.Sprint(demo.Phones()); got != want {
		t.Fatalf("phones as seeded = %s\nwant %s", got, want)
	}
	// What the reset may change, from the seed: the inventory lists Hoban's lines nowhere
	// else, and the shared phone carries Zoe's line too.
	want := demo.Phones()
	for i, p := range want {
		want[i].Lines = slices.DeleteFunc(slices.Clone(p.Lines), func(ext string) bool { return ext == "1001" })
		switch p.MAC {
		case hobansDesk:
			if fmt.Sprint(want[i].Lines) != "[]" {
				t.Fatalf("Hoban's desk phone is seeded with lines %v besides his", want[i].Lines)
			}
		case shared:
			if fmt.Sprint(want[i].Lines) != "[1006]" {
				t.Fatalf("the shared phone is seeded with lines %v besides Hoban's, want Zoe's", want[i].Lines)
			}
		}
	}

	opts := turnover.ResetOptions{RemoveDeviceLines: true}
	body := map[string]any{"users": []string{"1001"}, "options": optionsJSON(opts), "confirm": true}
	snapBefore := takeSnapshot(t)
	preview := previewOf(t, tok, domain, body)["1001"]
	j := runResetIn(t, tok, domain, body)
	if j.Status != "SUCCEEDED" || j.Done != 1 {
		t.Fatalf("job = %+v", j)
	}
	// Desk line, conference-room line, soft phone and mobile app.
	if want := map[string]int{"deviceLines": 4}; !maps.Equal(preview, want) || !maps.Equal(j.Users[0].Deleted, want) {
		t.Errorf("deleted %v, preview %v; want %v", j.Users[0].Deleted, preview, want)
	}
	snapAfter := takeSnapshot(t)
	if got, want := changes(snapBefore, snapAfter), expectedChanges(domain, "1001", opts, nil); !slices.Equal(got, want) {
		t.Errorf("the reset changed\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// Zoe's items, the conference-room line among them, item for item as they were.
	zoe := "item USER#" + domain + "#1006 "
	n := 0
	for k, v := range snapBefore {
		if strings.HasPrefix(k, zoe) {
			n++
			if snapAfter[k] != v {
				t.Errorf("%s changed:\n  %s\n  %s", k, v, snapAfter[k])
			}
		}
	}
	if snapBefore[zoe+"DEV#conf"] == "" || n < 10 {
		t.Errorf("Zoe's snapshot has %d items and conference line %q; the seed is not what this test expects", n, snapBefore[zoe+"DEV#conf"])
	}

	if got := phonesOf(t, tok, domain); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("phones after the reset = %v\nwant %v", got, want)
	}
}

// The scenario: a reset of 1002 with only deleteVoicemailMessages deletes the
// messages and what every reset removes, nothing else of 1002's and nothing of 1001's;
// the job counts what the preview showed.
func TestOnlyVoicemailMessagesGo(t *testing.T) {
	ctx := context.Background()
	domain := freshDomain(t, "onlyvm")
	tok := tokenFor(t, domain)
	lookup := func() string { return fmt.Sprint(directoryLookup(t, tok, domain, "3793")) }
	load := func(ext string) turnover.UserData {
		d, _, err := store().LoadUserData(ctx, domain, ext)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if got := lookup(); got != "[1002]" {
		t.Fatalf("Frye's digits before the reset find %s, want [1002]", got)
	}
	kaylee, hoban := load("1002"), load("1001")
	if len(kaylee.Voicemail) != 5 || len(kaylee.Greetings) != 3 || len(kaylee.Rules) != 3 || len(kaylee.Contacts) != 2 || len(kaylee.Devices) != 3 {
		t.Fatalf("1002 as seeded: %d messages, %d greetings, %d rules, %d contacts, %d devices; want 5, 3, 3, 2, 3",
			len(kaylee.Voicemail), len(kaylee.Greetings), len(kaylee.Rules), len(kaylee.Contacts), len(kaylee.Devices))
	}
	snapBefore := takeSnapshot(t)

	opts := turnover.ResetOptions{DeleteVoicemailMessages: true}
	body := map[string]any{"users": []string{"1002"}, "options": optionsJSON(opts), "confirm": true}
	preview := previewOf(t, tok, domain, body)["1002"]
	if want := map[string]int{"voicemailMessages": 5}; !maps.Equal(preview, want) {
		t.Errorf("preview of 1002 = %v, want %v", preview, want)
	}
	j := runResetIn(t, tok, domain, body)
	if j.Status != "SUCCEEDED" || j.Done != 1 || j.Users[0].Extension != "1002" {
		t.Fatalf("job = %+v", j)
	}
	if got := j.Users[0].Deleted; got["voicemailMessages"] != preview["voicemailMessages"] || !maps.Equal(got, preview) {
		t.Errorf("the job deleted %v, the preview showed %v", got, preview)
	}

	after := load("1002")
	if len(after.Voicemail) != 0 {
		t.Errorf("1002 still has %d messages", len(after.Voicemail))
	}
	same := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("1002's %s changed:\n  %+v\nwant\n  %+v", what, got, want)
		}
	}
	same("greetings", after.Greetings, kaylee.Greetings)
	same("rules", after.Rules, kaylee.Rules)
	same("contacts", after.Contacts, kaylee.Contacts)
	same("numbers", after.Numbers, kaylee.Numbers)
	same("devices", after.Devices, slices.DeleteFunc(slices.Clone(kaylee.Devices), func(d turnover.Device) bool { return d.Kind == turnover.DeviceSoftPhone }))
	u := after.User
	if u.FirstName+u.LastName+u.Email+u.PasswordHash+u.VoicemailPINHash != "" || u.Status != turnover.StatusSetupRequired || u.Department != kaylee.User.Department {
		t.Errorf("1002's profile after the reset = %+v", u)
	}
	if got := load("1001"); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", hoban) {
		t.Errorf("1001 changed:\n  %+v\nwant\n  %+v", got, hoban)
	}
	if got, want := changes(snapBefore, takeSnapshot(t)), expectedChanges(domain, "1002", opts, nil); !slices.Equal(got, want) {
		t.Errorf("the reset changed\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if got := lookup(); got != "[]" {
		t.Errorf("Frye's digits after the reset find %s", got)
	}
}
