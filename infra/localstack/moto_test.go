package localstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// moto's data.json, which the mail pages read, lists no DynamoDB items and no copies
// of a table that TransactWriteItems made and dropped.
func TestMotoDataForgetsDynamoDBCopies(t *testing.T) {
	ctx := context.Background()
	ddb := dynamodb.NewFromConfig(stack.AWS)
	table := stack.Resources.Tables["Table"]
	key := func(i int) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "MOTO#tracking"},
			"sk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprint(i)},
		}
	}
	for i := range 3 {
		if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := ddb.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{{
			Update: &ddbtypes.Update{
				TableName:                 aws.String(table),
				Key:                       key(i),
				UpdateExpression:          aws.String("SET n = :n"),
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":n": &ddbtypes.AttributeValueMemberN{Value: "1"}},
			},
		}}}); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := http.Get(stack.FrontDoorURL + "/moto-api/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data struct {
		DynamoDB struct {
			Item  []json.RawMessage
			Table []struct{ Name string }
		} `json:"dynamodb"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		t.Fatal(err)
	}
	if n := len(data.DynamoDB.Item); n != 0 {
		t.Errorf("data.json lists %d DynamoDB items, want none", n)
	}
	n := 0
	for _, tb := range data.DynamoDB.Table {
		if tb.Name == table {
			n++
		}
	}
	if n != 1 {
		t.Errorf("data.json lists table %s %d times, want once", table, n)
	}
}
