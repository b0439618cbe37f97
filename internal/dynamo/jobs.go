package dynamo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/turnover"
)

type jobItem struct {
	PK         string                `dynamodbav:"pk"`
	SK         string                `dynamodbav:"sk"`
	GSI1PK     string                `dynamodbav:"gsi1pk"`
	GSI1SK     string                `dynamodbav:"gsi1sk"`
	Domain     string                `dynamodbav:"domain"`
	JobID      string                `dynamodbav:"jobId"`
	Status     string                `dynamodbav:"status"`
	Options    turnover.ResetOptions `dynamodbav:"options"`
	Total      int                   `dynamodbav:"total"`
	Done       int                   `dynamodbav:"done"`
	Failed     int                   `dynamodbav:"failed"`
	CreatedBy  string                `dynamodbav:"createdBy"`
	CreatedAt  time.Time             `dynamodbav:"createdAt"`
	FinishedAt *time.Time            `dynamodbav:"finishedAt,omitempty"`
	EventSent  bool                  `dynamodbav:"eventPublished"`
	// RequestHash identifies the request that created the job, so that a job id met
	// again (a key reused after its idempotency record expired) is told apart from a
	// retry of that request. Manifest is where its manifest is, so that a retry can
	// start its execution without writing the manifest again.
	RequestHash    string `dynamodbav:"requestHash,omitempty"`
	ManifestBucket string `dynamodbav:"manifestBucket,omitempty"`
	ManifestKey    string `dynamodbav:"manifestKey,omitempty"`
}

func (j jobItem) job() turnover.Job {
	job := turnover.Job{
		Domain: j.Domain, ID: j.JobID, Status: turnover.JobStatus(j.Status), Options: j.Options,
		Total: j.Total, Done: j.Done, Failed: j.Failed, CreatedBy: j.CreatedBy, CreatedAt: j.CreatedAt,
		EventPublished: j.EventSent, RequestHash: j.RequestHash,
		Manifest: turnover.ManifestLocation{Bucket: j.ManifestBucket, Key: j.ManifestKey},
	}
	if j.FinishedAt != nil {
		job.FinishedAt = *j.FinishedAt
	}
	return job
}

type resultItem struct {
	PK        string         `dynamodbav:"pk"`
	SK        string         `dynamodbav:"sk"`
	Extension string         `dynamodbav:"extension"`
	Outcome   string         `dynamodbav:"outcome"`
	Deleted   map[string]int `dynamodbav:"deleted,omitempty"`
	Error     string         `dynamodbav:"error,omitempty"`
	At        time.Time      `dynamodbav:"at"`
}

// CreateJob records a new job. It returns an ECONFLICT error if the job exists, which it
// leaves as it is.
func (s *Store) CreateJob(ctx context.Context, j turnover.Job) error {
	item, err := attributevalue.MarshalMap(jobItem{
		PK: jobPK(j.Domain, j.ID), SK: skJob, GSI1PK: jobsGSIPK(j.Domain), GSI1SK: j.CreatedAt.UTC().Format(time.RFC3339Nano) + "#" + j.ID,
		Domain: j.Domain, JobID: j.ID, Status: string(j.Status),
		Options: j.Options, Total: j.Total, CreatedBy: j.CreatedBy, CreatedAt: j.CreatedAt,
		RequestHash: j.RequestHash, ManifestBucket: j.Manifest.Bucket, ManifestKey: j.Manifest.Key,
	})
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if isConditionFailed(err) {
		return turnover.Errorf(turnover.ECONFLICT, "Job %s exists already.", j.ID)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// GetJob returns a job. It returns an ENOTFOUND error if the domain has no such job.
func (s *Store) GetJob(ctx context.Context, domain, jobID string) (turnover.Job, error) {
	j, err := getItem[jobItem](ctx, s, jobPK(domain, jobID), skJob)
	if err != nil {
		return turnover.Job{}, fmt.Errorf("get job %s: %w", jobID, err)
	}
	if j == nil {
		return turnover.Job{}, turnover.Errorf(turnover.ENOTFOUND, "There is no reset job %s in domain %s.", jobID, domain)
	}
	return j.job(), nil
}

func (r resultItem) result() turnover.UserResult {
	return turnover.UserResult{Extension: r.Extension, Outcome: turnover.Outcome(r.Outcome), Deleted: r.Deleted, Error: r.Error, At: r.At}
}

// ListResults returns every user result a job has recorded, in extension order.
func (s *Store) ListResults(ctx context.Context, domain, jobID string) ([]turnover.UserResult, error) {
	items, err := queryAll[resultItem](ctx, s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :results)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(jobPK(domain, jobID)), ":results": str(prefixRes),
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("list results of job %s: %w", jobID, err)
	}
	results := make([]turnover.UserResult, len(items))
	for i, r := range items {
		results[i] = r.result()
	}
	return results, nil
}

// GetResults returns the results a job has recorded for the given extensions, keyed by
// extension; users the job has not reached are left out.
func (s *Store) GetResults(ctx context.Context, domain, jobID string, exts []string) (map[string]turnover.UserResult, error) {
	keys := make([]map[string]types.AttributeValue, len(exts))
	for i, ext := range exts {
		keys[i] = key(jobPK(domain, jobID), resultSK(ext))
	}
	items, err := batchGet[resultItem](ctx, s, keys)
	if err != nil {
		return nil, fmt.Errorf("get results of job %s: %w", jobID, err)
	}
	results := make(map[string]turnover.UserResult, len(items))
	for _, r := range items {
		results[r.Extension] = r.result()
	}
	return results, nil
}

// GetRecycleRows returns the new identities a job gives its extensions.
func (s *Store) GetRecycleRows(ctx context.Context, domain, jobID string) ([]turnover.NewIdentity, error) {
	items, err := queryAll[recycleItem](ctx, s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :rows)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(jobPK(domain, jobID)), ":rows": str(prefixRecycle),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("get new identities of job %s: %w", jobID, err)
	}
	rows := make([]turnover.NewIdentity, len(items))
	for i, r := range items {
		rows[i] = r.identity()
	}
	return rows, nil
}

// FinishJob sets a running job's final status from its counters and returns the job. A
// job that has finished already is returned as it is.
func (s *Store) FinishJob(ctx context.Context, domain, jobID string, mapFailed bool) (turnover.Job, error) {
	job, err := s.GetJob(ctx, domain, jobID)
	if err != nil {
		return job, err
	}
	if job.Status != turnover.JobRunning {
		return job, nil
	}
	job.Status = turnover.FinalStatus(job.Total, job.Done, job.Failed, mapFailed)
	job.FinishedAt = s.now().UTC()
	finished, err := attributevalue.Marshal(job.FinishedAt)
	if err != nil {
		return job, fmt.Errorf("encode finish time: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(jobPK(domain, jobID), skJob),
		UpdateExpression:         aws.String("SET #status = :status, finishedAt = :at"),
		ConditionExpression:      aws.String("#status = :running"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":status": str(string(job.Status)), ":at": finished, ":running": str(string(turnover.JobRunning)),
		},
	})
	if isConditionFailed(err) {
		return s.GetJob(ctx, domain, jobID) // another finalize finished it first
	}
	if err != nil {
		return job, fmt.Errorf("finish job %s: %w", jobID, err)
	}
	return job, nil
}

// ListNumbers returns a domain's phone number inventory in number order.
func (s *Store) ListNumbers(ctx context.Context, domain string) ([]turnover.PhoneNumber, error) {
	items, err := queryPartition[numberItem](ctx, s, numPK(domain))
	if err != nil {
		return nil, fmt.Errorf("list numbers of %s: %w", domain, err)
	}
	numbers := make([]turnover.PhoneNumber, len(items))
	for i, n := range items {
		numbers[i] = turnover.PhoneNumber{Number: n.Number, Extension: n.Extension}
	}
	return numbers, nil
}

// profileUpdate clears a reset user's identity and secrets, or gives the extension its
// recycled identity; either way the user must set up the account again. With a job id
// it also records the job that reset the user.
func profileUpdate(table, pk, ext, jobID string, r *turnover.NewIdentity) *types.Update {
	set := []string{"#status = :setup", "#search = :search"}
	remove := []string{"passwordHash", "pinHash"}
	values := map[string]types.AttributeValue{":setup": str(string(turnover.StatusSetupRequired))}
	if jobID != "" {
		set = append(set, "resetJob = :job")
		values[":job"] = str(jobID)
	}
	if r == nil {
		remove = append(remove, "firstName", "lastName", "email")
		values[":search"] = str(ext)
	} else {
		set = append(set, "firstName = :first", "lastName = :last", "email = :email")
		values[":search"] = str(searchText(r.FirstName, r.LastName, r.Extension))
		values[":first"], values[":last"], values[":email"] = str(r.FirstName), str(r.LastName), str(r.Email)
		if r.Department != "" {
			set = append(set, "department = :dept")
			values[":dept"] = str(r.Department)
		} else {
			remove = append(remove, "department")
		}
	}
	return &types.Update{
		TableName:                 &table,
		Key:                       key(pk, skProfile),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + " REMOVE " + strings.Join(remove, ", ")),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#status": "status", "#search": "search"},
		ExpressionAttributeValues: values,
	}
}

// recycleItem is the new identity a job gives an extension. It lives with the job, not
// in the state machine's input, which holds no personal data.
type recycleItem struct {
	PK               string `dynamodbav:"pk"`
	SK               string `dynamodbav:"sk"`
	Extension        string `dynamodbav:"extension"`
	FirstName        string `dynamodbav:"firstName"`
	LastName         string `dynamodbav:"lastName"`
	Email            string `dynamodbav:"email"`
	Department       string `dynamodbav:"department,omitempty"`
	SendWelcomeEmail bool   `dynamodbav:"sendWelcomeEmail"`
	ExpiresAt        int64  `dynamodbav:"expiresAt"`
}

// recycleRowsKept is how long a job keeps the identities it was given.
const recycleRowsKept = 30 * 24 * time.Hour

// PutRecycleRows keeps the new identities a job gives its extensions.
func (s *Store) PutRecycleRows(ctx context.Context, domain, jobID string, rows []turnover.NewIdentity) error {
	items := make([]any, len(rows))
	for i, r := range rows {
		items[i] = recycleItem{
			PK: jobPK(domain, jobID), SK: prefixRecycle + r.Extension, Extension: r.Extension,
			FirstName: r.FirstName, LastName: r.LastName, Email: r.Email, Department: r.Department, SendWelcomeEmail: r.SendWelcomeEmail,
			ExpiresAt: s.now().Add(recycleRowsKept).Unix(),
		}
	}
	return s.putAll(ctx, items)
}

func (r recycleItem) identity() turnover.NewIdentity {
	return turnover.NewIdentity{Extension: r.Extension, FirstName: r.FirstName, LastName: r.LastName, Email: r.Email, Department: r.Department, SendWelcomeEmail: r.SendWelcomeEmail}
}

// RunningJobs returns the ids of a domain's jobs that are still running.
func (s *Store) RunningJobs(ctx context.Context, domain string) ([]string, error) {
	items, err := queryAll[jobItem](ctx, s.db, &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(indexGSI1),
		KeyConditionExpression:    aws.String("gsi1pk = :pk"),
		FilterExpression:          aws.String("#status = :running"),
		ExpressionAttributeNames:  map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(jobsGSIPK(domain)), ":running": str(string(turnover.JobRunning))},
	})
	if err != nil {
		return nil, fmt.Errorf("list running jobs of %s: %w", domain, err)
	}
	ids := make([]string, len(items))
	for i, j := range items {
		ids[i] = j.JobID
	}
	return ids, nil
}

// MarkEventPublished records that a job's completion was announced.
func (s *Store) MarkEventPublished(ctx context.Context, domain, jobID string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(jobPK(domain, jobID), skJob),
		UpdateExpression:          aws.String("SET eventPublished = :true"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err != nil {
		return fmt.Errorf("mark event of job %s: %w", jobID, err)
	}
	return nil
}
