package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/turnover"
)

// setupItem is a user's one live setup link: only the hash of its token is kept, and one
// item per user means a new link replaces every older one.
type setupItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	TokenHash string `dynamodbav:"tokenHash"`
	Purpose   string `dynamodbav:"purpose"`
	IssuedAt  int64  `dynamodbav:"issuedAt"`
	// ValidUntil is checked in code; ExpiresAt only lets DynamoDB clean up later.
	ValidUntil int64 `dynamodbav:"validUntil"`
	ExpiresAt  int64 `dynamodbav:"expiresAt"`
}

const skSetup = "SETUP"

func unix(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

// PutSetupLink stores the hash of a user's new setup token, replacing any older link.
func (s *Store) PutSetupLink(ctx context.Context, domain, ext string, l turnover.SetupLink) error {
	item, err := attributevalue.MarshalMap(setupItem{
		PK: userPK(domain, ext), SK: skSetup, TokenHash: l.TokenHash, Purpose: string(l.Purpose),
		IssuedAt: l.IssuedAt.Unix(), ValidUntil: l.ValidUntil.Unix(), ExpiresAt: l.ValidUntil.Add(24 * time.Hour).Unix(),
	})
	if err != nil {
		return fmt.Errorf("encode setup link of %s: %w", ext, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	if err != nil {
		return fmt.Errorf("store setup link of %s: %w", ext, err)
	}
	return nil
}

// GetSetupLink returns a user's live setup link, or nil if there is none.
func (s *Store) GetSetupLink(ctx context.Context, domain, ext string) (*turnover.SetupLink, error) {
	it, err := getItem[setupItem](ctx, s, userPK(domain, ext), skSetup)
	if err != nil || it == nil {
		return nil, wrap(err, "get setup link of "+ext)
	}
	return &turnover.SetupLink{TokenHash: it.TokenHash, Purpose: turnover.LinkPurpose(it.Purpose),
		IssuedAt: time.Unix(it.IssuedAt, 0), ValidUntil: time.Unix(it.ValidUntil, 0)}, nil
}

// RedeemSetupLink uses a setup link once: in one transaction the link goes, if its
// token hash matches and it is still valid at now, and the user gets the new password
// hash (and PIN hash, unless empty) and becomes active. Of two redemptions of one link
// exactly one succeeds. It reports false when the link is gone, wrong or expired, and,
// for a redemption without a PIN hash (a recovery link), when the user has no PIN hash
// or is waiting for setup.
func (s *Store) RedeemSetupLink(ctx context.Context, domain, ext, tokenHash string, now time.Time, passwordHash, pinHash string) (bool, error) {
	pk := userPK(domain, ext)
	update := &types.Update{
		TableName:                &s.table,
		Key:                      key(pk, skProfile),
		UpdateExpression:         aws.String("SET passwordHash = :pw, #status = :active"),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: map[string]string{"#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pw": str(passwordHash), ":active": str(string(turnover.StatusActive)),
		},
	}
	if pinHash != "" {
		update.UpdateExpression = aws.String("SET passwordHash = :pw, pinHash = :pin, #status = :active")
		update.ExpressionAttributeValues[":pin"] = str(pinHash)
	} else {
		// A recovery link sets a password only: it must not finish a setup, which
		// would leave an active user without a voicemail PIN.
		update.ConditionExpression = aws.String("attribute_exists(pk) AND attribute_exists(pinHash) AND #status <> :setup")
		update.ExpressionAttributeValues[":setup"] = str(string(turnover.StatusSetupRequired))
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:           &s.table,
			Key:                 key(pk, skSetup),
			ConditionExpression: aws.String("tokenHash = :hash AND validUntil > :now"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":hash": str(tokenHash), ":now": unix(now),
			},
		}},
		{Update: update},
	}})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return false, nil
			}
		}
	}
	if err != nil {
		return false, fmt.Errorf("redeem setup link of %s: %w", ext, err)
	}
	return true, nil
}

// rateItem counts one username's failed setup attempts in one window.
type rateItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Attempts  int    `dynamodbav:"attempts"`
	ExpiresAt int64  `dynamodbav:"expiresAt"`
}

// ratePK keys a username's failures in the window that holds now; the username is kept
// only as a hash, so the item says nothing of who it is about.
func ratePK(username string, now time.Time, window time.Duration) string {
	sum := sha256.Sum256([]byte(username))
	return "RATE#" + hex.EncodeToString(sum[:]) + "#" + strconv.FormatInt(now.Unix()/int64(window.Seconds()), 10)
}

// AddSetupAttempts adds n (1 to count an attempt, -1 to give one back) to username's
// attempts in the window that holds now, and returns the new count: one UpdateItem with
// ADD and UPDATED_NEW, so that concurrent attempts each get a count of their own.
func (s *Store) AddSetupAttempts(ctx context.Context, username string, now time.Time, window time.Duration, n int) (int, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &s.table,
		Key:              key(ratePK(username, now, window), "RATE"),
		UpdateExpression: aws.String("ADD attempts :n SET expiresAt = :exp"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": num(n), ":exp": unix(now.Add(2 * window)),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("count setup attempt: %w", err)
	}
	var it rateItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return 0, fmt.Errorf("decode setup attempts: %w", err)
	}
	return it.Attempts, nil
}

// Mail markers: one item per scope and extension. "sending" holds the mail for one
// sender until leaseUntil; "sent" holds it until expiresAt (and DynamoDB's TTL then
// cleans it up). A marker without a state was written before leases existed: it means
// sent.
const (
	mailSending = "sending"
	mailSent    = "sent"
)

func mailKey(domain, scope, ext string) map[string]types.AttributeValue {
	return key("MAIL#"+domain+"#"+scope, ext)
}

// ClaimMailMarker claims one mail (of a job or request, to an extension) for one sender
// until leaseUntil. It succeeds when there is no marker or a "sending" one whose lease
// ran out by now. It reports false when the mail was sent, and returns an error while
// another sender's lease runs, so that the queue tries the mail again later.
func (s *Store) ClaimMailMarker(ctx context.Context, domain, scope, ext string, now, leaseUntil time.Time) (bool, error) {
	item := mailKey(domain, scope, ext)
	item["state"], item["leaseUntil"], item["expiresAt"] = str(mailSending), unix(leaseUntil), unix(leaseUntil)
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR (#state = :sending AND leaseUntil <= :now)"),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":sending": str(mailSending), ":now": unix(now)},
	})
	if err == nil {
		return true, nil
	}
	if !isConditionFailed(err) {
		return false, fmt.Errorf("claim mail to %s: %w", ext, err)
	}
	var m struct {
		State string `dynamodbav:"state"`
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: mailKey(domain, scope, ext), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, fmt.Errorf("read mail marker of %s: %w", ext, err)
	}
	if err := attributevalue.UnmarshalMap(out.Item, &m); err != nil {
		return false, fmt.Errorf("decode mail marker of %s: %w", ext, err)
	}
	if out.Item != nil && m.State != mailSending {
		return false, nil
	}
	return false, fmt.Errorf("mail to %s is being sent by another delivery; try again later", ext)
}

// MarkMailSent records that a claimed mail went: no claim succeeds until keepUntil.
func (s *Store) MarkMailSent(ctx context.Context, domain, scope, ext string, keepUntil time.Time) error {
	item := mailKey(domain, scope, ext)
	item["state"], item["expiresAt"] = str(mailSent), unix(keepUntil)
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item}); err != nil {
		return fmt.Errorf("record mail to %s as sent: %w", ext, err)
	}
	return nil
}

// ReleaseMailMarker ends the lease that ends at leaseUntil, whose mail could not be sent,
// so that a retry sends at once. It leaves a "sent" marker and another sender's lease
// alone.
func (s *Store) ReleaseMailMarker(ctx context.Context, domain, scope, ext string, leaseUntil time.Time) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       mailKey(domain, scope, ext),
		ConditionExpression:       aws.String("#state = :sending AND leaseUntil = :until"),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":sending": str(mailSending), ":until": unix(leaseUntil)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release mail to %s: %w", ext, err)
	}
	return nil
}

// SetIdentity gives a reset extension its new person: name, email and department, and
// the directory entry under the new name; any setup link sent before stops working. It returns an ECONFLICT error unless the user
// is waiting for setup (a reset extension), and ENOTFOUND if there is no such user.
func (s *Store) SetIdentity(ctx context.Context, domain string, id turnover.NewIdentity) error {
	u, err := s.GetUser(ctx, domain, id.Extension)
	if err != nil {
		return err
	}
	if u.Status != turnover.StatusSetupRequired {
		return turnover.Errorf(turnover.ECONFLICT, "Extension %s has not been reset; reset it before recycling it.", id.Extension)
	}
	upd := profileUpdate(s.table, userPK(domain, id.Extension), id.Extension, "", &id)
	upd.ConditionExpression = aws.String("#status = :setup")
	items := []types.TransactWriteItem{
		{Update: upd},
		{Delete: &types.Delete{TableName: &s.table, Key: key(userPK(domain, id.Extension), skSetup)}}, // older links die
	}
	if u.FirstName != "" || u.LastName != "" {
		old := newDirectoryItem(domain, turnover.DirectoryEntry{Extension: u.Extension, FirstName: u.FirstName, LastName: u.LastName})
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{TableName: &s.table, Key: key(old.PK, old.SK)}})
	}
	entry, err := attributevalue.MarshalMap(newDirectoryItem(domain, turnover.DirectoryEntry{Extension: id.Extension, FirstName: id.FirstName, LastName: id.LastName}))
	if err != nil {
		return fmt.Errorf("encode directory entry: %w", err)
	}
	if last := items[len(items)-1]; last.Delete != nil && last.Delete.Key["pk"].(*types.AttributeValueMemberS).Value == dirPK(domain) &&
		last.Delete.Key["sk"].(*types.AttributeValueMemberS).Value == entry["sk"].(*types.AttributeValueMemberS).Value {
		items = items[:len(items)-1] // same name again: the put below replaces the entry
	}
	items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: entry}})
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		return turnover.Errorf(turnover.ECONFLICT, "Extension %s changed while it was being recycled; try again.", id.Extension)
	}
	if err != nil {
		return fmt.Errorf("recycle %s: %w", id.Extension, err)
	}
	return nil
}

// ForcePasswordReset voids a user's password and every setup link sent before, in one
// transaction, and leaves the user password_required, as the product defines a forced
// reset. It reports whether the user has a voicemail PIN on file: one without (a user
// who never finished setup) must set a PIN too, so only a welcome link can finish their
// setup. The write is conditional on the PIN being as read, and read again when it
// changed meanwhile. It returns ENOTFOUND if there is no such user and ECONFLICT if the
// user kept changing.
func (s *Store) ForcePasswordReset(ctx context.Context, domain, ext string) (pinOnFile bool, err error) {
	pk := userPK(domain, ext)
	for range 3 {
		u, err := s.GetUser(ctx, domain, ext)
		if err != nil {
			return false, err
		}
		pin := "attribute_exists(pinHash)" // as read, so that what is reported holds
		if u.VoicemailPINHash == "" {
			pin = "attribute_not_exists(pinHash)"
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName:                &s.table,
				Key:                      key(pk, skProfile),
				UpdateExpression:         aws.String("REMOVE passwordHash SET #status = :required"),
				ConditionExpression:      aws.String("attribute_exists(pk) AND " + pin),
				ExpressionAttributeNames: map[string]string{"#status": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":required": str(string(turnover.StatusPasswordRequired)),
				},
			}},
			{Delete: &types.Delete{TableName: &s.table, Key: key(pk, skSetup)}}, // older links die
		}})
		var tc *types.TransactionCanceledException
		if errors.As(err, &tc) {
			continue // the PIN came or went since it was read, or the user is gone
		}
		if err != nil {
			return false, fmt.Errorf("force password reset of %s: %w", ext, err)
		}
		return u.VoicemailPINHash != "", nil
	}
	return false, turnover.Errorf(turnover.ECONFLICT, "Extension %s changed while its password was being reset; try again.", ext)
}
