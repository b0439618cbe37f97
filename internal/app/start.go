package app

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Start runs fn as a Lambda function: it loads the AWS configuration once, builds the
// handler from the process environment and hands it to the Lambda runtime. A function
// that cannot start says why and exits.
func Start(fn Function) {
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatalf("load AWS configuration: %v", err)
	}
	h, err := fn(ctx, awsCfg, os.LookupEnv, lambdacontext.NewLogger())
	if err != nil {
		log.Fatalf("start %s: %v", os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), err)
	}
	lambda.Start(h)
}
