package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"turnover/internal/backoff"
	"turnover/internal/turnover"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Store reads and writes turnover's table.
type Store struct {
	db    API
	table string
	now   func() time.Time
}

// New returns a store over the named table.
func New(db API, table string) *Store {
	return &Store{db: db, table: table, now: time.Now}
}

// maxBatchWrite is BatchWriteItem's limit of requests per call.
const maxBatchWrite = 25

// maxBatchGet is BatchGetItem's limit of keys per call.
const maxBatchGet = 100

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(n)} }

// profileItem is a user's PROFILE item.
type profileItem struct {
	PK               string `dynamodbav:"pk"`
	SK               string `dynamodbav:"sk"`
	GSI1PK           string `dynamodbav:"gsi1pk"`
	GSI1SK           string `dynamodbav:"gsi1sk"`
	Domain           string `dynamodbav:"domain"`
	Extension        string `dynamodbav:"extension"`
	FirstName        string `dynamodbav:"firstName,omitempty"`
	LastName         string `dynamodbav:"lastName,omitempty"`
	Email            string `dynamodbav:"email,omitempty"`
	Department       string `dynamodbav:"department,omitempty"`
	Scope            string `dynamodbav:"scope"`
	Status           string `dynamodbav:"status"`
	PasswordHash     string `dynamodbav:"passwordHash,omitempty"`
	VoicemailPINHash string `dynamodbav:"pinHash,omitempty"`
	// ResetJob is the last job that reset the user; a retried batch of that job sees it
	// and does not reset the user a second time.
	ResetJob string `dynamodbav:"resetJob,omitempty"`
	// PlanJob and PlanCounts are what the job resetting the user saved before deleting
	// anything of theirs (SavePlans); the job's commit removes them.
	PlanJob    string         `dynamodbav:"planJob,omitempty"`
	PlanCounts map[string]int `dynamodbav:"planCounts,omitempty"`
	// Search is what the users list's q matches: the name and extension, lower case.
	Search string `dynamodbav:"search"`
	// OffboardingID and OffboardingAt name the user's pending offboarding.
	OffboardingID string `dynamodbav:"offboardingId,omitempty"`
	OffboardingAt string `dynamodbav:"offboardingAt,omitempty"`
}

// searchText is a profile's search attribute.
func searchText(first, last, ext string) string {
	return strings.ToLower(strings.Join(strings.Fields(first+" "+last+" "+ext), " "))
}

func newProfileItem(u turnover.User) profileItem {
	return profileItem{
		PK: userPK(u.Domain, u.Extension), SK: skProfile,
		GSI1PK: usersGSIPK(u.Domain), GSI1SK: u.Extension,
		Domain: u.Domain, Extension: u.Extension,
		FirstName: u.FirstName, LastName: u.LastName, Email: u.Email, Department: u.Department,
		Scope: string(u.Scope), Status: string(u.Status),
		PasswordHash: u.PasswordHash, VoicemailPINHash: u.VoicemailPINHash,
		Search: searchText(u.FirstName, u.LastName, u.Extension),
	}
}

// saved is the plan a job saved on the profile, or nil.
func (p profileItem) saved() *turnover.SavedPlan {
	if p.PlanJob == "" {
		return nil
	}
	counts := p.PlanCounts
	if counts == nil {
		counts = map[string]int{} // an empty map is left out when stored
	}
	return &turnover.SavedPlan{Extension: p.Extension, JobID: p.PlanJob, Counts: counts}
}

func (p profileItem) user() turnover.User {
	var pending *turnover.PendingOffboarding
	if p.OffboardingID != "" {
		at, _ := time.Parse(atLayout, p.OffboardingAt)
		pending = &turnover.PendingOffboarding{ID: p.OffboardingID, At: at}
	}
	return turnover.User{
		Offboarding: pending,
		Domain:      p.Domain, Extension: p.Extension,
		FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Department: p.Department,
		Scope: turnover.Scope(p.Scope), Status: turnover.Status(p.Status),
		PasswordHash: p.PasswordHash, VoicemailPINHash: p.VoicemailPINHash,
	}
}

// GetUser returns one user of a domain. It returns an ENOTFOUND error if there is none.
func (s *Store) GetUser(ctx context.Context, domain, ext string) (turnover.User, error) {
	p, err := getItem[profileItem](ctx, s, userPK(domain, ext), skProfile)
	if err != nil {
		return turnover.User{}, fmt.Errorf("get user %s: %w", ext, err)
	}
	if p == nil {
		return turnover.User{}, turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist in domain %s.", ext, domain)
	}
	return p.user(), nil
}

// GetUsers returns the users of a domain with the given extensions, keyed by extension.
// Extensions with no user are left out.
func (s *Store) GetUsers(ctx context.Context, domain string, exts []string) (map[string]turnover.User, error) {
	keys := make([]map[string]types.AttributeValue, len(exts))
	for i, ext := range exts {
		keys[i] = key(userPK(domain, ext), skProfile)
	}
	items, err := batchGet[profileItem](ctx, s, keys)
	if err != nil {
		return nil, fmt.Errorf("get users: %w", err)
	}
	users := make(map[string]turnover.User, len(items))
	for _, p := range items {
		users[p.Extension] = p.user()
	}
	return users, nil
}

// getItem reads one item by key with a consistent read, or nil if there is none.
func getItem[T any](ctx context.Context, s *Store, pk, sk string) (*T, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if out.Item == nil {
		return nil, nil
	}
	var v T
	if err := attributevalue.UnmarshalMap(out.Item, &v); err != nil {
		return nil, fmt.Errorf("decode item: %w", err)
	}
	return &v, nil
}

// batchGet reads items by key in BatchGetItem calls of 100, retrying unprocessed keys
// with backoff and jitter. Keys with no item are left out.
func batchGet[T any](ctx context.Context, s *Store, keys []map[string]types.AttributeValue) ([]T, error) {
	var all []T
	for start := 0; start < len(keys); start += maxBatchGet {
		req := map[string]types.KeysAndAttributes{s.table: {Keys: keys[start:min(start+maxBatchGet, len(keys))], ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > maxAttempts {
				return nil, &retryableError{fmt.Errorf("keys still unprocessed after %d attempts", maxAttempts)}
			}
			if attempt > 0 {
				if err := backoff.Wait(ctx, attempt, 25*time.Millisecond); err != nil {
					return nil, err
				}
			}
			out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, err
			}
			var items []T
			if err := attributevalue.UnmarshalListOfMaps(out.Responses[s.table], &items); err != nil {
				return nil, fmt.Errorf("decode items: %w", err)
			}
			all = append(all, items...)
			req = out.UnprocessedKeys
		}
	}
	return all, nil
}

// ListUsers returns a page of a domain's users in extension order, and the cursor of the
// next page ("" when there is none). A cursor that is not one this store handed out for
// this domain is an EINVALID error.
func (s *Store) ListUsers(ctx context.Context, domain string, f turnover.UserFilter) ([]turnover.User, string, error) {
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		IndexName:              aws.String(indexGSI1),
		KeyConditionExpression: aws.String("gsi1pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(usersGSIPK(domain)),
		},
	}
	if f.Limit > 0 {
		in.Limit = aws.Int32(int32(f.Limit))
	}
	var filters []string
	filter := func(expr, name, attr, value string) {
		if value == "" {
			return
		}
		if in.ExpressionAttributeNames == nil {
			in.ExpressionAttributeNames = map[string]string{}
		}
		filters = append(filters, expr)
		in.ExpressionAttributeNames["#"+name] = attr
		in.ExpressionAttributeValues[":"+name] = str(value)
	}
	filter("#status = :status", "status", "status", string(f.Status))
	filter("#dept = :dept", "dept", "department", f.Department)
	filter("#scope = :scope", "scope", "scope", string(f.Scope))
	filter("contains(#search, :search)", "search", "search", strings.ToLower(f.Query))
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	if f.Cursor != "" {
		start, err := decodeCursor(f.Cursor, usersGSIPK(domain))
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list users of %s: %w", domain, err)
	}
	var items []profileItem
	if err := attributevalue.UnmarshalListOfMaps(out.Items, &items); err != nil {
		return nil, "", fmt.Errorf("decode users: %w", err)
	}
	users := make([]turnover.User, len(items))
	for i, p := range items {
		users[i] = p.user()
	}
	next := ""
	if len(out.LastEvaluatedKey) > 0 {
		next, err = encodeCursor(out.LastEvaluatedKey)
		if err != nil {
			return nil, "", err
		}
	}
	return users, next, nil
}

// cursor is the last key of a page of the users index.
type cursor struct {
	PK     string `json:"p"`
	SK     string `json:"s"`
	GSI1PK string `json:"g"`
	GSI1SK string `json:"h"`
}

func encodeCursor(k map[string]types.AttributeValue) (string, error) {
	var c cursor
	if err := attributevalue.UnmarshalMap(k, &struct {
		PK     *string `dynamodbav:"pk"`
		SK     *string `dynamodbav:"sk"`
		GSI1PK *string `dynamodbav:"gsi1pk"`
		GSI1SK *string `dynamodbav:"gsi1sk"`
	}{&c.PK, &c.SK, &c.GSI1PK, &c.GSI1SK}); err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeCursor(s, wantGSI1PK string) (map[string]types.AttributeValue, error) {
	bad := turnover.Errorf(turnover.EINVALID, "The cursor is not valid here; start again without one.")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.GSI1PK != wantGSI1PK || c.PK == "" || c.SK == "" {
		return nil, bad
	}
	return map[string]types.AttributeValue{
		"pk": str(c.PK), "sk": str(c.SK), "gsi1pk": str(c.GSI1PK), "gsi1sk": str(c.GSI1SK),
	}, nil
}

// directoryItem is one entry of the dial-by-name directory.
type directoryItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Extension string `dynamodbav:"extension"`
	FirstName string `dynamodbav:"firstName"`
	LastName  string `dynamodbav:"lastName"`
}

func newDirectoryItem(domain string, e turnover.DirectoryEntry) directoryItem {
	return directoryItem{
		PK: dirPK(domain), SK: dirSK(turnover.DirectoryDigits(e.FirstName, e.LastName), e.Extension),
		Extension: e.Extension, FirstName: e.FirstName, LastName: e.LastName,
	}
}

// LookupDirectory returns the directory entries whose keypad digits (last name, then
// first name) start with digits, in digit order.
func (s *Store) LookupDirectory(ctx context.Context, domain, digits string) ([]turnover.DirectoryEntry, error) {
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :digits)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(dirPK(domain)), ":digits": str(digits),
		},
	}
	items, err := queryAll[directoryItem](ctx, s.db, in)
	if err != nil {
		return nil, fmt.Errorf("look up directory of %s: %w", domain, err)
	}
	entries := make([]turnover.DirectoryEntry, len(items))
	for i, it := range items {
		entries[i] = turnover.DirectoryEntry{Extension: it.Extension, FirstName: it.FirstName, LastName: it.LastName}
	}
	return entries, nil
}

// queryPartition reads every item under one partition key.
func queryPartition[T any](ctx context.Context, s *Store, pk string) ([]T, error) {
	return queryAll[T](ctx, s.db, &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
	})
}

// queryAll reads every page of a query and decodes its items.
func queryAll[T any](ctx context.Context, db dynamodb.QueryAPIClient, in *dynamodb.QueryInput) ([]T, error) {
	var all []T
	p := dynamodb.NewQueryPaginator(db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		var items []T
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &items); err != nil {
			return nil, fmt.Errorf("decode items: %w", err)
		}
		all = append(all, items...)
	}
	return all, nil
}

// maxAttempts bounds retries of unprocessed batch items.
const maxAttempts = 8

// retryableError is a failure that may pass if the work is tried again later: items
// DynamoDB left unprocessed (throttling) however often they were sent again, or a lock
// that lapsed. Its RetryableError method is how the AWS SDK's retry classifiers
// (retry.IsErrorRetryables with retry.DefaultRetryables) know it, and so the reset
// engine, which then has the state machine retry the batch.
type retryableError struct{ err error }

func (e *retryableError) Error() string        { return e.err.Error() }
func (e *retryableError) Unwrap() error        { return e.err }
func (e *retryableError) RetryableError() bool { return true }

// writesAtOnce bounds the BatchWriteItem calls of one batchWrite in flight at once.
const writesAtOnce = 4

// batchWrite sends write requests in calls of 25, a few calls at a time, retrying
// unprocessed items with backoff and jitter. Items still unprocessed after maxAttempts
// make a retryable error (see retryableError).
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writesAtOnce)
	for start := 0; start < len(reqs); start += maxBatchWrite {
		chunk := reqs[start:min(start+maxBatchWrite, len(reqs))]
		g.Go(func() error { return s.writeChunk(gctx, chunk) })
	}
	return g.Wait()
}

func (s *Store) writeChunk(ctx context.Context, chunk []types.WriteRequest) error {
	pending := map[string][]types.WriteRequest{s.table: chunk}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > maxAttempts {
			n := 0
			for _, reqs := range pending {
				n += len(reqs)
			}
			return &retryableError{fmt.Errorf("batch write: %d items still unprocessed after %d attempts", n, maxAttempts)}
		}
		if attempt > 0 {
			if err := backoff.Wait(ctx, attempt, 25*time.Millisecond); err != nil {
				return err
			}
		}
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return fmt.Errorf("batch write: %w", err)
		}
		pending = out.UnprocessedItems
	}
	return nil
}

func putRequest(item any) (types.WriteRequest, error) {
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		return types.WriteRequest{}, err
	}
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: av}}, nil
}

func deleteRequest(pk, sk string) types.WriteRequest {
	return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(pk, sk)}}
}

// wrap says what was being done when err happened; a nil err stays nil.
func wrap(err error, doing string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// isConditionFailed reports whether err is a failed condition of a single-item write.
func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}
