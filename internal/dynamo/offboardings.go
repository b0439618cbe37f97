package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/turnover"
)

// Offboardings live under pk OFF#{domain}, sk {id}. While scheduled (or starting) they
// also sit in gsi1 under DUE / {at}#{domain}#{id}, so the schedule finds every due one
// with one Query. Each user of a pending offboarding carries its id and time on the
// profile, which both shows it in the users list and refuses a second one.

const (
	gsiDue   = "DUE"
	atLayout = "2006-01-02T15:04:05Z"
)

func offPK(domain string) string { return "OFF#" + domain }

type offboardingItem struct {
	PK        string                 `dynamodbav:"pk"`
	SK        string                 `dynamodbav:"sk"`
	GSI1PK    string                 `dynamodbav:"gsi1pk,omitempty"`
	GSI1SK    string                 `dynamodbav:"gsi1sk,omitempty"`
	Domain    string                 `dynamodbav:"domain"`
	ID        string                 `dynamodbav:"id"`
	Status    string                 `dynamodbav:"status"`
	At        string                 `dynamodbav:"at"`
	Users     []string               `dynamodbav:"users"`
	Options   turnover.ResetOptions  `dynamodbav:"options"`
	Recycle   []turnover.NewIdentity `dynamodbav:"recycle,omitempty"`
	CreatedBy string                 `dynamodbav:"createdBy"`
	CreatedAt time.Time              `dynamodbav:"createdAt"`
	JobID     string                 `dynamodbav:"jobId,omitempty"`
}

func (it offboardingItem) offboarding() turnover.Offboarding {
	at, _ := time.Parse(atLayout, it.At)
	return turnover.Offboarding{Domain: it.Domain, ID: it.ID, Status: turnover.OffboardingStatus(it.Status), At: at,
		Users: it.Users, Options: it.Options, Recycle: it.Recycle, CreatedBy: it.CreatedBy, CreatedAt: it.CreatedAt, JobID: it.JobID}
}

func dueSK(at time.Time, domain, id string) string {
	return at.UTC().Format(atLayout) + "#" + domain + "#" + id
}

// markUsers sets (or, with at zero, clears) the pending offboarding on each user's profile.
func (s *Store) markUsers(domain, id string, users []string, at time.Time, create bool) []types.TransactWriteItem {
	items := make([]types.TransactWriteItem, 0, len(users))
	for _, ext := range users {
		u := &types.Update{
			TableName:                 &s.table,
			Key:                       key(userPK(domain, ext), skProfile),
			ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(id)},
		}
		switch {
		case create:
			u.UpdateExpression = aws.String("SET offboardingId = :id, offboardingAt = :at")
			u.ConditionExpression = aws.String("attribute_exists(pk) AND attribute_not_exists(offboardingId)")
			u.ExpressionAttributeValues[":at"] = str(at.UTC().Format(atLayout))
			// A refusal then carries the profile, which names the offboarding in the way.
			u.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		case !at.IsZero():
			u.UpdateExpression = aws.String("SET offboardingAt = :at")
			u.ConditionExpression = aws.String("offboardingId = :id")
			u.ExpressionAttributeValues[":at"] = str(at.UTC().Format(atLayout))
		default:
			u.UpdateExpression = aws.String("REMOVE offboardingId, offboardingAt")
			u.ConditionExpression = aws.String("offboardingId = :id")
		}
		items = append(items, types.TransactWriteItem{Update: u})
	}
	return items
}

// MaxOffboardingUsers is the most users one offboarding may name: one transaction
// marks them all.
const MaxOffboardingUsers = 99

// CreateOffboarding schedules an offboarding and marks its users. It returns an
// EUNPROCESSABLE error naming a user that is in another pending offboarding (with that
// offboarding's id and time) or does not exist, and ECONFLICT if the offboarding exists
// already.
func (s *Store) CreateOffboarding(ctx context.Context, o turnover.Offboarding) error {
	item, err := attributevalue.MarshalMap(offboardingItem{
		PK: offPK(o.Domain), SK: o.ID, GSI1PK: gsiDue, GSI1SK: dueSK(o.At, o.Domain, o.ID),
		Domain: o.Domain, ID: o.ID, Status: string(turnover.OffboardingScheduled), At: o.At.UTC().Format(atLayout),
		Users: o.Users, Options: o.Options, Recycle: o.Recycle, CreatedBy: o.CreatedBy, CreatedAt: o.CreatedAt,
	})
	if err != nil {
		return fmt.Errorf("encode offboarding: %w", err)
	}
	items := append([]types.TransactWriteItem{{Put: &types.Put{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}}, s.markUsers(o.Domain, o.ID, o.Users, o.At, true)...)
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for i, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) != "ConditionalCheckFailed" {
				continue
			}
			if i == 0 {
				return turnover.Errorf(turnover.ECONFLICT, "Offboarding %s exists already.", o.ID)
			}
			return userRefused(o.Domain, o.Users[i-1], r.Item)
		}
	}
	if err != nil {
		return fmt.Errorf("create offboarding: %w", err)
	}
	return nil
}

// userRefused says why a user's profile refused a new offboarding, from the profile as
// it stood (nil when there is none).
func userRefused(domain, ext string, profile map[string]types.AttributeValue) error {
	if profile == nil {
		return turnover.Errorf(turnover.EUNPROCESSABLE, "Domain %s has no extension %s; nothing was scheduled.", domain, ext)
	}
	var p struct {
		OffboardingID string `dynamodbav:"offboardingId"`
		OffboardingAt string `dynamodbav:"offboardingAt"`
	}
	if err := attributevalue.UnmarshalMap(profile, &p); err != nil || p.OffboardingID == "" {
		// The profile passed the API's check and was not in an offboarding: something
		// changed it in between.
		return turnover.Errorf(turnover.ECONFLICT, "Extension %s changed while the offboarding was being scheduled; try again.", ext)
	}
	when := p.OffboardingAt
	if at, err := time.Parse(atLayout, when); err == nil {
		when = at.Format(time.RFC3339)
	}
	return turnover.Errorf(turnover.EUNPROCESSABLE, "Extension %s is already in offboarding %s, scheduled for %s; cancel or move that one first.", ext, p.OffboardingID, when)
}

// GetOffboarding returns one offboarding; ENOTFOUND if the domain has none of that id.
func (s *Store) GetOffboarding(ctx context.Context, domain, id string) (turnover.Offboarding, error) {
	it, err := getItem[offboardingItem](ctx, s, offPK(domain), id)
	if err != nil {
		return turnover.Offboarding{}, fmt.Errorf("get offboarding %s: %w", id, err)
	}
	if it == nil {
		return turnover.Offboarding{}, turnover.Errorf(turnover.ENOTFOUND, "There is no offboarding %s in domain %s.", id, domain)
	}
	return it.offboarding(), nil
}

// ListOffboardings returns a domain's offboardings.
func (s *Store) ListOffboardings(ctx context.Context, domain string) ([]turnover.Offboarding, error) {
	items, err := queryPartition[offboardingItem](ctx, s, offPK(domain))
	if err != nil {
		return nil, fmt.Errorf("list offboardings of %s: %w", domain, err)
	}
	out := make([]turnover.Offboarding, len(items))
	for i, it := range items {
		out[i] = it.offboarding()
	}
	return out, nil
}

// changeScheduled updates a scheduled offboarding together with its users' marks. It
// returns ECONFLICT when the offboarding is no longer scheduled.
func (s *Store) changeScheduled(ctx context.Context, o turnover.Offboarding, update string, names map[string]string, values map[string]types.AttributeValue, marks []types.TransactWriteItem) error {
	values[":scheduled"] = str(string(turnover.OffboardingScheduled))
	names["#status"] = "status"
	items := append([]types.TransactWriteItem{{Update: &types.Update{
		TableName:                 &s.table,
		Key:                       key(offPK(o.Domain), o.ID),
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String("#status = :scheduled"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}}}, marks...)
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		return turnover.Errorf(turnover.ECONFLICT, "Offboarding %s has started or was cancelled; it can no longer change.", o.ID)
	}
	if err != nil {
		return fmt.Errorf("change offboarding %s: %w", o.ID, err)
	}
	return nil
}

// CancelOffboarding cancels a scheduled offboarding and frees its users. It returns
// ECONFLICT once the offboarding has started.
func (s *Store) CancelOffboarding(ctx context.Context, o turnover.Offboarding) error {
	return s.changeScheduled(ctx, o, "SET #status = :cancelled REMOVE gsi1pk, gsi1sk", map[string]string{},
		map[string]types.AttributeValue{":cancelled": str(string(turnover.OffboardingCancelled))},
		s.markUsers(o.Domain, o.ID, o.Users, time.Time{}, false))
}

// RescheduleOffboarding moves a scheduled offboarding to another time. It returns
// ECONFLICT once the offboarding has started.
func (s *Store) RescheduleOffboarding(ctx context.Context, o turnover.Offboarding, at time.Time) error {
	return s.changeScheduled(ctx, o, "SET #at = :at, gsi1sk = :due", map[string]string{"#at": "at"},
		map[string]types.AttributeValue{":at": str(at.UTC().Format(atLayout)), ":due": str(dueSK(at, o.Domain, o.ID))},
		s.markUsers(o.Domain, o.ID, o.Users, at, false))
}

// DueOffboardings returns the offboardings, of every domain, whose time has come by now
// and that have not started: scheduled ones and ones a firing began starting.
func (s *Store) DueOffboardings(ctx context.Context, now time.Time) ([]turnover.Offboarding, error) {
	items, err := queryAll[offboardingItem](ctx, s.db, &dynamodb.QueryInput{
		TableName:              &s.table,
		IndexName:              aws.String(indexGSI1),
		KeyConditionExpression: aws.String("gsi1pk = :due AND gsi1sk <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":due": str(gsiDue), ":now": str(now.UTC().Format(atLayout) + "#~"),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("find due offboardings: %w", err)
	}
	out := make([]turnover.Offboarding, len(items))
	for i, it := range items {
		out[i] = it.offboarding()
	}
	return out, nil
}

// ClaimOffboarding marks a due offboarding as starting. It reports false when the
// offboarding was cancelled, moved to a later time, or has started.
func (s *Store) ClaimOffboarding(ctx context.Context, o turnover.Offboarding, now time.Time) (bool, error) {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(offPK(o.Domain), o.ID),
		UpdateExpression:         aws.String("SET #status = :starting, jobId = :job"),
		ConditionExpression:      aws.String("(#status = :scheduled OR #status = :starting) AND #at <= :now"),
		ExpressionAttributeNames: map[string]string{"#status": "status", "#at": "at"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":starting": str(string(turnover.OffboardingStarting)), ":scheduled": str(string(turnover.OffboardingScheduled)),
			":job": str(turnover.OffboardingJobID(o.ID)), ":now": str(now.UTC().Format(atLayout)),
		},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim offboarding %s: %w", o.ID, err)
	}
	return true, nil
}

// MarkOffboardingStarted records that a claimed offboarding's job has started, takes it
// off the schedule and frees its users' marks. It reports false if another firing did
// so first.
func (s *Store) MarkOffboardingStarted(ctx context.Context, o turnover.Offboarding) (bool, error) {
	items := append([]types.TransactWriteItem{{Update: &types.Update{
		TableName:                &s.table,
		Key:                      key(offPK(o.Domain), o.ID),
		UpdateExpression:         aws.String("SET #status = :started REMOVE gsi1pk, gsi1sk"),
		ConditionExpression:      aws.String("#status = :starting"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":started": str(string(turnover.OffboardingStarted)), ":starting": str(string(turnover.OffboardingStarting)),
		},
	}}}, s.markUsers(o.Domain, o.ID, o.Users, time.Time{}, false)...)
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark offboarding %s started: %w", o.ID, err)
	}
	return true, nil
}
