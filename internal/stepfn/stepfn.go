// Package stepfn starts reset jobs as executions of the reset-users state machine.
package stepfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"turnover/internal/turnover"
)

// API is the part of the Step Functions client the starter uses.
type API interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

var _ API = (*sfn.Client)(nil)

// Starter starts executions of one state machine.
type Starter struct {
	sfn             API
	stateMachineARN string
}

// New returns a starter for the state machine.
func New(api API, stateMachineARN string) *Starter {
	return &Starter{sfn: api, stateMachineARN: stateMachineARN}
}

// StartJob starts the job's execution, named after the job, so starting it again is a
// no-op: an execution of that name that exists already is no error.
func (s *Starter) StartJob(ctx context.Context, in turnover.ExecutionInput) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode input of job %s: %w", in.JobID, err)
	}
	input := string(body)
	_, err = s.sfn.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: &s.stateMachineARN, Name: &in.JobID, Input: &input,
	})
	var exists *types.ExecutionAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("start job %s: %w", in.JobID, err)
	}
	return nil
}
