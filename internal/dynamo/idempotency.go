package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/turnover"
)

// idempotencyItem remembers one Idempotency-Key of a domain: the request it came with
// and, once done, the response it got.
type idempotencyItem struct {
	PK          string `dynamodbav:"pk"`
	SK          string `dynamodbav:"sk"`
	RequestHash string `dynamodbav:"requestHash"`
	Complete    bool   `dynamodbav:"complete"`
	Failed      bool   `dynamodbav:"failed"`
	Status      int    `dynamodbav:"status,omitempty"`
	Body        []byte `dynamodbav:"body,omitempty"`
	ExpiresAt   int64  `dynamodbav:"expiresAt"`
}

// idempotencyPK keys a domain's record of one Idempotency-Key; the key itself is stored
// only as a hash.
func idempotencyPK(domain, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "IDEM#" + domain + "#" + hex.EncodeToString(sum[:])
}

const skIdempotency = "IDEM"

// ClaimIdempotencyKey claims a domain's Idempotency-Key for a request, for ttl. It
// returns nil when the claim is new (the caller goes on and then completes or releases
// it), or the record of the request that claimed the key first.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, domain, idemKey, requestHash string, ttl time.Duration) (*turnover.IdempotencyRecord, error) {
	now := s.now()
	item, err := attributevalue.MarshalMap(idempotencyItem{
		PK: idempotencyPK(domain, idemKey), SK: skIdempotency, RequestHash: requestHash, ExpiresAt: now.Add(ttl).Unix(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode idempotency record: %w", err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item:      item,
		// A claim whose request failed on our side may be taken again by the same
		// request, and by no other.
		ConditionExpression: aws.String("attribute_not_exists(pk) OR expiresAt < :now OR (failed = :true AND requestHash = :hash)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":  &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)},
			":true": &types.AttributeValueMemberBOOL{Value: true},
			":hash": str(requestHash),
		},
	})
	if err == nil {
		return nil, nil
	}
	if !isConditionFailed(err) {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	return s.GetIdempotencyRecord(ctx, domain, idemKey)
}

// GetIdempotencyRecord returns the live record of a domain's Idempotency-Key, or nil.
func (s *Store) GetIdempotencyRecord(ctx context.Context, domain, idemKey string) (*turnover.IdempotencyRecord, error) {
	it, err := getItem[idempotencyItem](ctx, s, idempotencyPK(domain, idemKey), skIdempotency)
	if err != nil || it == nil || it.ExpiresAt < s.now().Unix() {
		return nil, wrap(err, "get idempotency record")
	}
	return &turnover.IdempotencyRecord{RequestHash: it.RequestHash, Complete: it.Complete, Status: it.Status, Body: it.Body}, nil
}

// CompleteIdempotencyKey stores the response a claimed key's request got.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, domain, idemKey string, status int, body []byte) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(idempotencyPK(domain, idemKey), skIdempotency),
		UpdateExpression:         aws.String("SET complete = :true, #status = :status, body = :body"),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":true": &types.AttributeValueMemberBOOL{Value: true}, ":status": num(status),
			":body": &types.AttributeValueMemberB{Value: body},
		},
	})
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a claim whose request changed nothing, so that the same
// key can be tried again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, domain, idemKey string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: key(idempotencyPK(domain, idemKey), skIdempotency),
		ConditionExpression:       aws.String("complete = :false"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":false": &types.AttributeValueMemberBOOL{Value: false}},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// FailIdempotencyKey marks a claimed key whose request failed on our side after it may
// have changed something: the same request may take the key again and finish; another
// request with the key is still refused.
func (s *Store) FailIdempotencyKey(ctx context.Context, domain, idemKey string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(idempotencyPK(domain, idemKey), skIdempotency),
		UpdateExpression:          aws.String("SET failed = :true"),
		ConditionExpression:       aws.String("complete = :false"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}, ":false": &types.AttributeValueMemberBOOL{Value: false}},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("mark idempotency key failed: %w", err)
	}
	return nil
}
