package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// createResources stands up the plan's tables, buckets, email identities, state
// machines and queues in moto, through the front door.
func (s *Stack) createResources(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	ddb := dynamodb.NewFromConfig(s.AWS)
	s3c := s3.NewFromConfig(s.AWS, func(o *s3.Options) { o.UsePathStyle = true })
	ses := sesv2.NewFromConfig(s.AWS)
	sf := sfn.NewFromConfig(s.AWS)
	for _, t := range s.plan.tables {
		run(func() error { return s.createTable(ctx, ddb, t) })
	}
	for _, b := range s.plan.buckets {
		run(func() error { return s.createBucket(ctx, s3c, b) })
	}
	for _, id := range s.plan.identities {
		run(func() error {
			if _, err := ses.CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(id)}); err != nil {
				return fmt.Errorf("create email identity %s: %w", id, err)
			}
			return nil
		})
	}
	for _, m := range s.plan.machines {
		run(func() error { return s.createStateMachine(ctx, sf, m) })
	}
	// Queues go one after the other, as a source queue's RedrivePolicy names its
	// dead-letter queue, which must exist first.
	run(func() error { return s.createQueues(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

// cfnTable is the part of AWS::DynamoDB::Table and AWS::Serverless::SimpleTable the
// local stack honours.
type cfnTable struct {
	AttributeDefinitions   []ddbtypes.AttributeDefinition
	KeySchema              []ddbtypes.KeySchemaElement
	BillingMode            ddbtypes.BillingMode
	ProvisionedThroughput  *ddbtypes.ProvisionedThroughput
	GlobalSecondaryIndexes []ddbtypes.GlobalSecondaryIndex
	LocalSecondaryIndexes  []ddbtypes.LocalSecondaryIndex
	StreamSpecification    *ddbtypes.StreamSpecification
	SSESpecification       *struct {
		SSEEnabled     bool
		SSEType        ddbtypes.SSEType
		KMSMasterKeyId *string
	}
	TimeToLiveSpecification *struct {
		AttributeName string
		Enabled       bool
	}
	PointInTimeRecoverySpecification *struct{ PointInTimeRecoveryEnabled bool }
	// SimpleTable
	PrimaryKey *struct{ Name, Type string }
}

func decodeProps(props map[string]any, out any) error {
	b, err := json.Marshal(props)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (s *Stack) createTable(ctx context.Context, c *dynamodb.Client, t tableSpec) error {
	var p cfnTable
	if err := decodeProps(t.Props, &p); err != nil {
		return fmt.Errorf("table %s: properties: %w", t.LogicalID, err)
	}
	in := &dynamodb.CreateTableInput{
		TableName:              aws.String(t.Name),
		AttributeDefinitions:   p.AttributeDefinitions,
		KeySchema:              p.KeySchema,
		BillingMode:            p.BillingMode,
		ProvisionedThroughput:  p.ProvisionedThroughput,
		GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
		LocalSecondaryIndexes:  p.LocalSecondaryIndexes,
		StreamSpecification:    p.StreamSpecification,
	}
	if t.Simple {
		name, typ := "id", "String"
		if p.PrimaryKey != nil {
			name, typ = p.PrimaryKey.Name, p.PrimaryKey.Type
		}
		at := map[string]ddbtypes.ScalarAttributeType{"String": "S", "Number": "N", "Binary": "B"}[typ]
		if at == "" {
			return fmt.Errorf("table %s: PrimaryKey.Type %q is not String, Number or Binary", t.LogicalID, typ)
		}
		in.AttributeDefinitions = []ddbtypes.AttributeDefinition{{AttributeName: aws.String(name), AttributeType: at}}
		in.KeySchema = []ddbtypes.KeySchemaElement{{AttributeName: aws.String(name), KeyType: ddbtypes.KeyTypeHash}}
	}
	if in.BillingMode == "" && in.ProvisionedThroughput == nil {
		in.BillingMode = ddbtypes.BillingModePayPerRequest
	}
	if sse := p.SSESpecification; sse != nil {
		in.SSESpecification = &ddbtypes.SSESpecification{Enabled: aws.Bool(sse.SSEEnabled), SSEType: sse.SSEType, KMSMasterKeyId: sse.KMSMasterKeyId}
	}
	if _, err := c.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("create table %s: %w", t.Name, err)
	}
	if ttl := p.TimeToLiveSpecification; ttl != nil && ttl.AttributeName != "" {
		if _, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(t.Name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(ttl.AttributeName), Enabled: aws.Bool(ttl.Enabled)},
		}); err != nil {
			return fmt.Errorf("table %s: time to live: %w", t.Name, err)
		}
	}
	if pitr := p.PointInTimeRecoverySpecification; pitr != nil && pitr.PointInTimeRecoveryEnabled {
		if _, err := c.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName:                        aws.String(t.Name),
			PointInTimeRecoverySpecification: &ddbtypes.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: aws.Bool(true)},
		}); err != nil {
			s.log.Debug("point-in-time recovery not set locally", "table", t.Name, "err", err)
		}
	}
	s.log.Debug("table created", "logicalId", t.LogicalID, "name", t.Name)
	return nil
}

// cfnBucket is the part of AWS::S3::Bucket the local stack honours.
type cfnBucket struct {
	BucketEncryption *struct {
		ServerSideEncryptionConfiguration []struct {
			ServerSideEncryptionByDefault *s3types.ServerSideEncryptionByDefault
			BucketKeyEnabled              *bool
		}
	}
	PublicAccessBlockConfiguration *s3types.PublicAccessBlockConfiguration
	OwnershipControls              *s3types.OwnershipControls
	VersioningConfiguration        *struct {
		Status s3types.BucketVersioningStatus
	}
}

func (s *Stack) createBucket(ctx context.Context, c *s3.Client, b bucketSpec) error {
	var p cfnBucket
	if err := decodeProps(b.Props, &p); err != nil {
		return fmt.Errorf("bucket %s: properties: %w", b.LogicalID, err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.Name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	// What follows does not change how the bucket behaves locally; moto not taking it
	// is not worth failing the stack for.
	cosmetic := func(what string, err error) {
		if err != nil {
			s.log.Debug("bucket setting not applied locally", "bucket", b.Name, "setting", what, "err", err)
		}
	}
	if e := p.BucketEncryption; e != nil {
		cfg := &s3types.ServerSideEncryptionConfiguration{}
		for _, r := range e.ServerSideEncryptionConfiguration {
			cfg.Rules = append(cfg.Rules, s3types.ServerSideEncryptionRule{ApplyServerSideEncryptionByDefault: r.ServerSideEncryptionByDefault, BucketKeyEnabled: r.BucketKeyEnabled})
		}
		_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(b.Name), ServerSideEncryptionConfiguration: cfg})
		cosmetic("BucketEncryption", err)
	}
	if pab := p.PublicAccessBlockConfiguration; pab != nil {
		_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(b.Name), PublicAccessBlockConfiguration: pab})
		cosmetic("PublicAccessBlockConfiguration", err)
	}
	if oc := p.OwnershipControls; oc != nil {
		_, err := c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: aws.String(b.Name), OwnershipControls: oc})
		cosmetic("OwnershipControls", err)
	}
	if v := p.VersioningConfiguration; v != nil {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b.Name), VersioningConfiguration: &s3types.VersioningConfiguration{Status: v.Status}})
		cosmetic("VersioningConfiguration", err)
	}
	var skipped []string
	for k := range b.Props {
		switch k {
		case "BucketName", "BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls", "VersioningConfiguration":
		default:
			skipped = append(skipped, k)
		}
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		s.log.Debug("bucket properties not applied locally", "bucket", b.Name, "properties", strings.Join(skipped, ","))
	}
	s.log.Debug("bucket created", "logicalId", b.LogicalID, "name", b.Name)
	return nil
}

func (s *Stack) createStateMachine(ctx context.Context, c *sfn.Client, m machineSpec) error {
	out, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String(m.Name),
		Definition: aws.String(string(m.Definition)),
		RoleArn:    aws.String(fmt.Sprintf("arn:%s:iam::%s:role/%s-%s", Partition, AccountID, StackName, m.LogicalID)),
		Type:       sfntypes.StateMachineType(m.Type),
	})
	if err != nil {
		return fmt.Errorf("create state machine %s from %s: %w", m.LogicalID, m.File, err)
	}
	if got := aws.ToString(out.StateMachineArn); got != m.ARN {
		return fmt.Errorf("state machine %s: moto made %s, the template resolves %s", m.LogicalID, got, m.ARN)
	}
	s.log.Debug("state machine created", "logicalId", m.LogicalID, "arn", m.ARN)
	return nil
}
