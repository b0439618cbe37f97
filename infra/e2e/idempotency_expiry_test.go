package e2e_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"turnover/internal/turnover"
)

// A job's id comes from its domain and Idempotency-Key, and a job outlives the key's
// record (15 days, then DynamoDB's TTL deletes it). A key sent again after that meets
// its old job: another request is refused and the job, its manifest, its new identities
// and its results stay as they were; the same request gets the old job back and nothing
// new starts.
func TestIdempotencyKeyReusedAfterItsRecordExpired(t *testing.T) {
	ctx := context.Background()
	domain := freshDomain(t, "expiry")
	tok := tokenFor(t, domain)
	key := rand.Text()
	first := map[string]any{
		"users":   []string{"1009"},
		"options": map[string]any{"deleteCustomContacts": true, "recycle": true},
		"recycle": []map[string]any{{"extension": "1009", "firstName": "Ann", "lastName": "Lee", "email": "ann.lee@example.com"}},
		"confirm": true,
	}
	var started job
	if status := doWithKey(t, tok, "POST", "/v1/domains/"+domain+"/resets", key, first, &started); status != http.StatusAccepted {
		t.Fatalf("first request: %d %+v", status, started)
	}
	old := waitJob(t, tok, domain, started.JobID)
	if old.Status != "SUCCEEDED" {
		t.Fatalf("first job = %+v", old)
	}
	stored, err := store().GetJob(ctx, domain, old.JobID)
	hash, manifest := stored.RequestHash, stored.Manifest
	if err != nil || hash == "" || manifest.Key == "" {
		t.Fatalf("the job item keeps request hash %q and manifest %+v (%v); want both", hash, manifest, err)
	}
	snapshot := func() string { return jobSnapshot(t, domain, old.JobID, manifest) }
	before := snapshot()
	runs := executions(t)
	user1002 := userOf(t, tok, domain, "1002")

	// TTL deletes the key's record; the key comes back with another request.
	forgetKey(t, domain, key)
	var e struct {
		Error struct{ Code, Message string }
	}
	other := map[string]any{"users": []string{"1002"}, "options": map[string]any{}, "confirm": true}
	if status := doWithKey(t, tok, "POST", "/v1/domains/"+domain+"/resets", key, other, &e); status != 422 || e.Error.Code != "unprocessable" ||
		e.Error.Message != "This Idempotency-Key was used with a different request; use a new key for a new request." {
		t.Errorf("the key with another body: %d %+v, want 422 unprocessable", status, e)
	}
	if after := snapshot(); after != before {
		t.Errorf("the refused request changed the old job:\nbefore %s\nafter  %s", before, after)
	}
	if u := userOf(t, tok, domain, "1002"); u != user1002 {
		t.Errorf("1002 changed: %+v -> %+v", user1002, u)
	}

	// The same request again, its record gone too: the old job, as it is.
	forgetKey(t, domain, key)
	var again job
	if status := doWithKey(t, tok, "POST", "/v1/domains/"+domain+"/resets", key, first, &again); status != http.StatusAccepted || again.JobID != old.JobID || again.Status != "SUCCEEDED" {
		t.Errorf("the same request again: %d %+v, want 202 with job %s as it finished", status, again, old.JobID)
	}
	if after := snapshot(); after != before {
		t.Errorf("the same request again changed the old job:\nbefore %s\nafter  %s", before, after)
	}
	if n := executions(t); n != runs {
		t.Errorf("%d executions started, want none", n-runs)
	}
}

// forgetKey deletes a domain's record of an Idempotency-Key, as DynamoDB's TTL does once
// it has expired. The record's key is the store's: the domain and the key's SHA-256.
func forgetKey(t *testing.T, domain, key string) {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	_, err := dynamodb.NewFromConfig(stack.AWS).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(stack.Resources.Tables["Table"]),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "IDEM#" + domain + "#" + hex.EncodeToString(sum[:])},
			"sk": &types.AttributeValueMemberS{Value: "IDEM"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jobSnapshot is everything a job has: its items in the table (the job, its results and
// new identities) and its manifest object, with when the object was last written.
func jobSnapshot(t *testing.T, domain, jobID string, at turnover.ManifestLocation) string {
	t.Helper()
	ctx := context.Background()
	out, err := dynamodb.NewFromConfig(stack.AWS).Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(stack.Resources.Tables["Table"]),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "JOB#" + domain + "#" + jobID}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) < 3 { // the job, 1009's result, 1009's new identity
		t.Fatalf("job %s has %d items, want its job, result and recycle items", jobID, len(out.Items))
	}
	var items []map[string]any
	for _, it := range out.Items {
		m := map[string]any{}
		for k, v := range it {
			m[k] = v
		}
		items = append(items, m)
	}
	obj, err := s3.NewFromConfig(stack.AWS).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(at.Bucket), Key: aws.String(at.Key)})
	if err != nil {
		t.Fatalf("manifest of %s: %v", jobID, err)
	}
	defer obj.Body.Close()
	manifest, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"items": items, "manifest": string(manifest), "etag": aws.ToString(obj.ETag), "modified": obj.LastModified})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// userOf is one user as the API shows them.
func userOf(t *testing.T, tok, domain, ext string) user {
	t.Helper()
	var u user
	if status := doIn(t, tok, "GET", "/v1/domains/"+domain+"/users/"+ext, nil, &u); status != 200 {
		t.Fatalf("get %s: %d", ext, status)
	}
	return u
}
