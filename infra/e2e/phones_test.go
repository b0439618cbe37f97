package e2e_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"turnover/internal/turnover"
)

// The desk phone inventory and the lines index of the DynamoDB adapter, against moto
// through the real SDK, in domains of their own.
func TestPhoneInventoryAndLinesIndex(t *testing.T) {
	ctx := context.Background()
	const domain, other = "phonestest", "phonestestother"
	const lobby, spare, unlisted = "00:04:f2:aa:00:01", "00:04:f2:aa:00:02", "00:04:f2:aa:00:03"
	if err := store().PutPhones(ctx, domain, []turnover.Phone{
		{MAC: spare, Model: "Poly VVX 250", Label: "Spare"},
		{MAC: lobby, Model: "Poly Trio 8800", Label: "Lobby", Lines: []string{"ignored"}},
	}); err != nil {
		t.Fatal(err)
	}
	user := func(domain, ext string, devices ...turnover.Device) {
		t.Helper()
		d := turnover.UserData{User: turnover.User{Domain: domain, Extension: ext, Scope: turnover.ScopeBasicUser, Status: turnover.StatusActive}, Devices: devices}
		if err := store().PutUserData(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	desk := func(id, mac string) turnover.Device {
		return turnover.Device{ID: id, Kind: turnover.DeviceDesk, MAC: mac, Model: "Poly Trio 8800"}
	}
	// 3010 has two line keys on the lobby phone and a soft phone; 3002 a line on the lobby
	// phone and one on a phone the inventory does not hold; 3003 a desk line with no MAC.
	// Extensions are put out of order, and another domain has a line on the same MAC.
	user(domain, "3010", desk("desk", lobby), desk("key2", lobby), turnover.Device{ID: "soft", Kind: turnover.DeviceSoftPhone})
	user(domain, "3002", desk("desk", lobby), turnover.Device{ID: "x", Kind: turnover.DeviceDesk, MAC: unlisted, Model: "Poly CCX 400"}, turnover.Device{ID: "mobile", Kind: turnover.DeviceMobileApp})
	user(domain, "3003", turnover.Device{ID: "desk", Kind: turnover.DeviceDesk})
	user(other, "3004", desk("desk", lobby))

	list := func() string {
		t.Helper()
		phones, err := store().ListPhones(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%+v", phones)
	}
	queries := stack.Calls()["dynamodb.Query"]
	got := list()
	if n := stack.Calls()["dynamodb.Query"] - queries; n != 2 {
		t.Errorf("listing phones took %d Query calls, want 2 (the inventory and the lines index)", n)
	}
	want := fmt.Sprintf("%+v", []turnover.Phone{
		{MAC: lobby, Model: "Poly Trio 8800", Label: "Lobby", Lines: []string{"3002", "3010"}},
		{MAC: spare, Model: "Poly VVX 250", Label: "Spare", Lines: []string{}},
		{MAC: unlisted, Model: "Poly CCX 400", Lines: []string{"3002"}},
	})
	if got != want {
		t.Errorf("phones = %s\nwant     %s", got, want)
	}

	// The index attributes do not change what a user's devices read back as.
	d, _, err := store().LoadUserData(ctx, domain, "3010")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%+v", d.Devices), fmt.Sprintf("%+v", []turnover.Device{desk("desk", lobby), desk("key2", lobby), {ID: "soft", Kind: turnover.DeviceSoftPhone}}); got != want {
		t.Errorf("3010's devices = %s, want %s", got, want)
	}

	// Deleting a line's device item, as a reset does, takes it off its phone; the phone
	// stays in the inventory.
	del := func(ext, id string) {
		t.Helper()
		_, err := dynamodb.NewFromConfig(stack.AWS).DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(stack.Resources.Tables["Table"]),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "USER#" + domain + "#" + ext},
				"sk": &types.AttributeValueMemberS{Value: "DEV#" + id},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	del("3002", "desk")
	del("3002", "x")
	del("3010", "desk")
	want = fmt.Sprintf("%+v", []turnover.Phone{
		{MAC: lobby, Model: "Poly Trio 8800", Label: "Lobby", Lines: []string{"3010"}},
		{MAC: spare, Model: "Poly VVX 250", Label: "Spare", Lines: []string{}},
	})
	if got := list(); got != want {
		t.Errorf("after deleting lines, phones = %s\nwant     %s", got, want)
	}
	del("3010", "key2")
	want = fmt.Sprintf("%+v", []turnover.Phone{
		{MAC: lobby, Model: "Poly Trio 8800", Label: "Lobby", Lines: []string{}},
		{MAC: spare, Model: "Poly VVX 250", Label: "Spare", Lines: []string{}},
	})
	if got := list(); got != want {
		t.Errorf("after deleting every line, phones = %s\nwant     %s", got, want)
	}

	if phones, err := store().ListPhones(ctx, "phonestestnobody"); err != nil || len(phones) != 0 {
		t.Errorf("a domain with no phones: %v, %v", phones, err)
	}
}
