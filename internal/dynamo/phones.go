package dynamo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"turnover/internal/turnover"
)

// phoneItem is a desk phone of the domain's inventory.
type phoneItem struct {
	PK    string `dynamodbav:"pk"`
	SK    string `dynamodbav:"sk"`
	MAC   string `dynamodbav:"mac"`
	Model string `dynamodbav:"model,omitempty"`
	Label string `dynamodbav:"label,omitempty"`
}

// deskLineItem is a user's line on a desk phone: their device item, in their own item
// collection, with gsi1 attributes that file it under the phone in the lines index.
// Deleting the device item takes the line out of the index with it.
type deskLineItem struct {
	deviceItem
	GSI1PK    string `dynamodbav:"gsi1pk"`
	GSI1SK    string `dynamodbav:"gsi1sk"`
	Extension string `dynamodbav:"extension"`
}

// deviceLine is the item written for one of u's devices: a line on a desk phone with a
// MAC goes into the lines index; soft phones and mobile apps have no phone to be on.
func deviceLine(u turnover.User, v deviceItem) any {
	if v.Kind != turnover.DeviceDesk || v.MAC == "" {
		return v
	}
	return deskLineItem{deviceItem: v, GSI1PK: linesGSIPK(u.Domain), GSI1SK: lineGSISK(v.MAC, u.Extension, v.ID), Extension: u.Extension}
}

// PutPhones adds desk phones to a domain's inventory, or overwrites them under the same
// MAC. The phones' Lines are ignored: a line is an item of its user's (PutUserData).
func (s *Store) PutPhones(ctx context.Context, domain string, phones []turnover.Phone) error {
	items := make([]any, len(phones))
	for i, p := range phones {
		items[i] = phoneItem{PK: phonePK(domain), SK: p.MAC, MAC: p.MAC, Model: p.Model, Label: p.Label}
	}
	return wrap(s.putAll(ctx, items), "put phones of "+domain)
}

// ListPhones returns a domain's desk phones in MAC order, each with the extensions that
// have a line on it in extension order; a phone with no lines left has none, and stays.
// It reads the inventory with one paginated Query and the lines index with another. The
// index is eventually consistent: a line just written or deleted may show a moment late.
// A line on a MAC the inventory does not hold is listed under a phone of its own, with
// the model the line names and no label, so no line goes unseen.
func (s *Store) ListPhones(ctx context.Context, domain string) ([]turnover.Phone, error) {
	var inventory []phoneItem
	var lines []deskLineItem
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		inventory, err = queryPartition[phoneItem](gctx, s, phonePK(domain))
		return wrap(err, "read phone inventory")
	})
	g.Go(func() (err error) {
		lines, err = queryAll[deskLineItem](gctx, s.db, &dynamodb.QueryInput{
			TableName:                 &s.table,
			IndexName:                 aws.String(indexGSI1),
			KeyConditionExpression:    aws.String("gsi1pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(linesGSIPK(domain))},
		})
		return wrap(err, "read lines index")
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list phones of %s: %w", domain, err)
	}
	byMAC := make(map[string]*turnover.Phone, len(inventory))
	for _, p := range inventory {
		byMAC[p.MAC] = &turnover.Phone{MAC: p.MAC, Model: p.Model, Label: p.Label, Lines: []string{}}
	}
	for _, l := range lines {
		p, ok := byMAC[l.MAC]
		if !ok {
			p = &turnover.Phone{MAC: l.MAC, Model: l.Model, Lines: []string{}}
			byMAC[l.MAC] = p
		}
		p.Lines = append(p.Lines, l.Extension)
	}
	phones := make([]turnover.Phone, 0, len(byMAC))
	for _, p := range byMAC {
		slices.Sort(p.Lines)
		p.Lines = slices.Compact(p.Lines) // two lines of one user on a phone: one extension
		phones = append(phones, *p)
	}
	slices.SortFunc(phones, func(a, b turnover.Phone) int { return strings.Compare(a.MAC, b.MAC) })
	return phones, nil
}
