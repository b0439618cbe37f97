// Package app builds each Lambda function of template.yaml from its configuration and
// AWS clients. The functions' main packages and the local stack both build them here,
// so a function runs the same way in Lambda and on a laptop.
package app

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"turnover/internal/api"
	"turnover/internal/config"
	"turnover/internal/dynamo"
	"turnover/internal/eventbus"
	"turnover/internal/mailer"
	"turnover/internal/offboard"
	"turnover/internal/reset"
	"turnover/internal/s3store"
	"turnover/internal/secret"
	"turnover/internal/sesmail"
	"turnover/internal/setup"
	"turnover/internal/sqsqueue"
	"turnover/internal/stepfn"
)

// Function builds one Lambda handler from an AWS configuration, the function's
// environment and the logger its logs go to. It fails when the configuration is
// incomplete.
type Function func(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error)

// Functions are keyed by their folder under functions/, which is the CodeUri of the
// function in template.yaml.
var Functions = map[string]Function{
	"api":      API,
	"reset":    Reset,
	"finalize": Finalize,
	"offboard": Offboard,
	"mailer":   Mailer,
}

// usersAtOnce bounds how many users of one batch a reset invocation reads at once: a
// whole default batch, so every read is in the same round.
const usersAtOnce = 25

// API builds the portal's HTTP API function.
func API(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error) {
	cfg, err := config.LoadAPI(lookup)
	if err != nil {
		return nil, err
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName)
	srv := &api.Server{
		// The API finishes setups; it sends no mail itself, it queues it.
		Setup:        setup.New(store, nil, secrets{}, setup.Config{}),
		Mail:         sqsqueue.New(sqs.NewFromConfig(awsCfg), cfg.MailQueueURL),
		Accounts:     store,
		Users:        store,
		Jobs:         store,
		Manifests:    s3store.New(s3.NewFromConfig(awsCfg), cfg.BucketName),
		Executions:   stepfn.New(sfn.NewFromConfig(awsCfg), cfg.StateMachineARN),
		Offboardings: store,
		Idempotency:  store,
		Log:          log,
		BatchSize:    cfg.BatchSize,
	}
	return lambda.NewHandler(httpadapter.NewV2(srv.Handler()).ProxyWithContext), nil
}

// Reset builds the function that resets one batch of a job's users.
func Reset(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error) {
	cfg, err := config.LoadReset(lookup)
	if err != nil {
		return nil, err
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName)
	svc := reset.New(
		store,
		s3store.New(s3.NewFromConfig(awsCfg), cfg.BucketName),
		sqsqueue.New(sqs.NewFromConfig(awsCfg), cfg.MailQueueURL),
		log,
		usersAtOnce,
	)
	return lambda.NewHandler(svc.ResetBatch), nil
}

// Finalize builds the function that closes a job.
func Finalize(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error) {
	cfg, err := config.LoadFinalize(lookup)
	if err != nil {
		return nil, err
	}
	f := reset.NewFinalizer(
		dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName),
		eventbus.New(eventbridge.NewFromConfig(awsCfg), cfg.EventBusName),
		log,
	)
	return lambda.NewHandler(f.Finalize), nil
}

// Mailer builds the function that sends queued mail: links in the table, mail through
// SES v2, at the configured rate.
func Mailer(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error) {
	cfg, err := config.LoadMailer(lookup)
	if err != nil {
		return nil, err
	}
	ses := sesv2.NewFromConfig(awsCfg, func(o *sesv2.Options) { o.Retryer = sesmail.Retryer() })
	links := setup.New(dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName), sesmail.New(ses, cfg.SenderEmail), secrets{}, setup.Config{
		PortalURL: cfg.PortalURL, Brand: cfg.BrandName, LinkTTL: cfg.LinkTTL,
	})
	return lambda.NewHandler(mailer.New(links, cfg.Rate, log).Handle), nil
}

// secrets are the password and PIN rules and hashing of package secret.
type secrets struct{}

func (secrets) CheckPassword(pw string) error        { return secret.CheckPassword(pw) }
func (secrets) CheckPIN(pin, extension string) error { return secret.CheckPIN(pin, extension) }
func (secrets) Hash(s string) (string, error)        { return secret.Hash(s) }

// Offboard builds the function that starts due offboardings.
func Offboard(ctx context.Context, awsCfg aws.Config, lookup config.Lookup, log *slog.Logger) (lambda.Handler, error) {
	cfg, err := config.LoadOffboard(lookup)
	if err != nil {
		return nil, err
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.TableName)
	svc := offboard.New(store, &reset.Launcher{
		Jobs:       store,
		Manifests:  s3store.New(s3.NewFromConfig(awsCfg), cfg.BucketName),
		Executions: stepfn.New(sfn.NewFromConfig(awsCfg), cfg.StateMachineARN),
		BatchSize:  cfg.BatchSize,
	}, log)
	return lambda.NewHandler(svc.Fire), nil
}
