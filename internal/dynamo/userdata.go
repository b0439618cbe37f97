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

type voicemailItem struct {
	PK         string    `dynamodbav:"pk"`
	SK         string    `dynamodbav:"sk"`
	ID         string    `dynamodbav:"id"`
	Folder     string    `dynamodbav:"folder"`
	From       string    `dynamodbav:"from"`
	ReceivedAt time.Time `dynamodbav:"receivedAt"`
	Seconds    int       `dynamodbav:"seconds"`
	AudioKey   string    `dynamodbav:"audioKey"`
}

type greetingItem struct {
	PK       string `dynamodbav:"pk"`
	SK       string `dynamodbav:"sk"`
	ID       string `dynamodbav:"id"`
	Kind     string `dynamodbav:"kind"`
	Label    string `dynamodbav:"label"`
	AudioKey string `dynamodbav:"audioKey"`
}

type ruleItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	ID        string `dynamodbav:"id"`
	Name      string `dynamodbav:"name"`
	TimeFrame string `dynamodbav:"timeFrame,omitempty"`
	Action    string `dynamodbav:"action"`
	Default   bool   `dynamodbav:"default"`
}

type contactItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	ID        string `dynamodbav:"id"`
	FirstName string `dynamodbav:"firstName"`
	LastName  string `dynamodbav:"lastName"`
	Phone     string `dynamodbav:"phone"`
	Email     string `dynamodbav:"email,omitempty"`
}

type deviceItem struct {
	PK    string `dynamodbav:"pk"`
	SK    string `dynamodbav:"sk"`
	ID    string `dynamodbav:"id"`
	Kind  string `dynamodbav:"kind"`
	MAC   string `dynamodbav:"mac,omitempty"`
	Model string `dynamodbav:"model,omitempty"`
}

type didItem struct {
	PK     string `dynamodbav:"pk"`
	SK     string `dynamodbav:"sk"`
	Number string `dynamodbav:"number"`
}

// numberItem is a DID of the domain's inventory.
type numberItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Number    string `dynamodbav:"number"`
	Extension string `dynamodbav:"extension,omitempty"`
}

// LoadUserData returns a user and everything they own, read with one paginated Query of
// the user's item collection, with the plan a job saved on the profile (data.Saved). It
// returns an ENOTFOUND error if the user does not exist. ResetJob is the id of the last
// job that reset the user.
func (s *Store) LoadUserData(ctx context.Context, domain, ext string) (data turnover.UserData, resetJob string, err error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(userPK(domain, ext))},
		ConsistentRead:            aws.Bool(true),
	})
	found := false
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return data, "", fmt.Errorf("load data of %s: %w", ext, err)
		}
		for _, item := range out.Items {
			sk := item["sk"].(*types.AttributeValueMemberS).Value
			if err := decodeOwned(sk, item, &data, &resetJob, &found); err != nil {
				return data, "", fmt.Errorf("decode %s of %s: %w", sk, ext, err)
			}
		}
	}
	if !found {
		return data, "", turnover.Errorf(turnover.ENOTFOUND, "Extension %s does not exist in domain %s.", ext, domain)
	}
	return data, resetJob, nil
}

func decodeOwned(sk string, item map[string]types.AttributeValue, d *turnover.UserData, resetJob *string, found *bool) error {
	switch {
	case sk == skProfile:
		var p profileItem
		if err := attributevalue.UnmarshalMap(item, &p); err != nil {
			return err
		}
		d.User, d.Saved, *resetJob, *found = p.user(), p.saved(), p.ResetJob, true
	case strings.HasPrefix(sk, prefixVM):
		var v voicemailItem
		if err := attributevalue.UnmarshalMap(item, &v); err != nil {
			return err
		}
		d.Voicemail = append(d.Voicemail, turnover.VoicemailMessage{ID: v.ID, Folder: v.Folder, From: v.From, ReceivedAt: v.ReceivedAt, Seconds: v.Seconds, AudioKey: v.AudioKey})
	case strings.HasPrefix(sk, prefixGR):
		var g greetingItem
		if err := attributevalue.UnmarshalMap(item, &g); err != nil {
			return err
		}
		d.Greetings = append(d.Greetings, turnover.Greeting{ID: g.ID, Kind: g.Kind, Label: g.Label, AudioKey: g.AudioKey})
	case strings.HasPrefix(sk, prefixAR):
		var r ruleItem
		if err := attributevalue.UnmarshalMap(item, &r); err != nil {
			return err
		}
		d.Rules = append(d.Rules, turnover.AnsweringRule{ID: r.ID, Name: r.Name, TimeFrame: r.TimeFrame, Action: r.Action, Default: r.Default})
	case strings.HasPrefix(sk, prefixCT):
		var c contactItem
		if err := attributevalue.UnmarshalMap(item, &c); err != nil {
			return err
		}
		d.Contacts = append(d.Contacts, turnover.Contact{ID: c.ID, FirstName: c.FirstName, LastName: c.LastName, Phone: c.Phone, Email: c.Email})
	case strings.HasPrefix(sk, prefixDEV):
		var v deviceItem
		if err := attributevalue.UnmarshalMap(item, &v); err != nil {
			return err
		}
		d.Devices = append(d.Devices, turnover.Device{ID: v.ID, Kind: v.Kind, MAC: v.MAC, Model: v.Model})
	case strings.HasPrefix(sk, prefixDID):
		var n didItem
		if err := attributevalue.UnmarshalMap(item, &n); err != nil {
			return err
		}
		d.Numbers = append(d.Numbers, n.Number)
	}
	return nil
}

// ownedItems are the items of a user's collection other than the profile.
func ownedItems(d turnover.UserData) []any {
	pk := userPK(d.User.Domain, d.User.Extension)
	var items []any
	for _, v := range d.Voicemail {
		items = append(items, voicemailItem{PK: pk, SK: voicemailSK(v.Folder, v.ID), ID: v.ID, Folder: v.Folder, From: v.From, ReceivedAt: v.ReceivedAt, Seconds: v.Seconds, AudioKey: v.AudioKey})
	}
	for _, g := range d.Greetings {
		items = append(items, greetingItem{PK: pk, SK: prefixGR + g.ID, ID: g.ID, Kind: g.Kind, Label: g.Label, AudioKey: g.AudioKey})
	}
	for _, r := range d.Rules {
		items = append(items, ruleItem{PK: pk, SK: prefixAR + r.ID, ID: r.ID, Name: r.Name, TimeFrame: r.TimeFrame, Action: r.Action, Default: r.Default})
	}
	for _, c := range d.Contacts {
		items = append(items, contactItem{PK: pk, SK: prefixCT + c.ID, ID: c.ID, FirstName: c.FirstName, LastName: c.LastName, Phone: c.Phone, Email: c.Email})
	}
	for _, v := range d.Devices {
		items = append(items, deviceLine(d.User, deviceItem{PK: pk, SK: prefixDEV + v.ID, ID: v.ID, Kind: v.Kind, MAC: v.MAC, Model: v.Model}))
	}
	for _, n := range d.Numbers {
		items = append(items, didItem{PK: pk, SK: prefixDID + n, Number: n})
	}
	return items
}

// PutUserData writes a user, everything they own, the numbers routed to them and, if
// they have a name, their directory entry. It is how data comes in from the phone system
// (and how the demo domain is seeded); it overwrites what is there under the same keys.
func (s *Store) PutUserData(ctx context.Context, d turnover.UserData) error {
	items := append([]any{newProfileItem(d.User)}, ownedItems(d)...)
	for _, n := range d.Numbers {
		items = append(items, numberItem{PK: numPK(d.User.Domain), SK: n, Number: n, Extension: d.User.Extension})
	}
	if d.User.FirstName != "" || d.User.LastName != "" {
		items = append(items, newDirectoryItem(d.User.Domain, turnover.DirectoryEntry{Extension: d.User.Extension, FirstName: d.User.FirstName, LastName: d.User.LastName}))
	}
	return s.putAll(ctx, items)
}

// PutAvailableNumbers adds unrouted DIDs to a domain's inventory.
func (s *Store) PutAvailableNumbers(ctx context.Context, domain string, numbers []string) error {
	items := make([]any, len(numbers))
	for i, n := range numbers {
		items[i] = numberItem{PK: numPK(domain), SK: n, Number: n}
	}
	return s.putAll(ctx, items)
}

// PutSharedContacts adds contacts every user of the domain sees. Resets never touch them.
func (s *Store) PutSharedContacts(ctx context.Context, domain string, contacts []turnover.Contact) error {
	items := make([]any, len(contacts))
	for i, c := range contacts {
		items[i] = contactItem{PK: sharedPK(domain), SK: prefixCT + c.ID, ID: c.ID, FirstName: c.FirstName, LastName: c.LastName, Phone: c.Phone, Email: c.Email}
	}
	return s.putAll(ctx, items)
}

func (s *Store) putAll(ctx context.Context, items []any) error {
	reqs := make([]types.WriteRequest, 0, len(items))
	for _, it := range items {
		r, err := putRequest(it)
		if err != nil {
			return fmt.Errorf("encode item: %w", err)
		}
		reqs = append(reqs, r)
	}
	return s.batchWrite(ctx, reqs)
}
