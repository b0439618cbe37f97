package s3store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"turnover/internal/s3store"
)

// api is DeleteObjects as S3 answers it under load: each key fails with its code for as
// many calls as fails says, then is deleted. Nothing else is called.
type api struct {
	s3store.API
	mu    sync.Mutex
	code  map[string]string
	fails map[string]int
	calls [][]string // the keys of each call
}

func (f *api) DeleteObjects(_ context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &s3.DeleteObjectsOutput{}
	var keys []string
	for _, o := range in.Delete.Objects {
		k := aws.ToString(o.Key)
		keys = append(keys, k)
		if f.fails[k] > 0 {
			f.fails[k]--
			out.Errors = append(out.Errors, types.Error{Key: o.Key, Code: aws.String(f.code[k]), Message: aws.String("not deleted")})
			continue
		}
		out.Deleted = append(out.Deleted, types.DeletedObject{Key: o.Key})
	}
	f.calls = append(f.calls, keys)
	return out, nil
}

func TestDeleteAudioRetriesOnlyKeysThatMayPass(t *testing.T) {
	const a, b, c = "audio/d/1/voicemail/a.wav", "audio/d/1/voicemail/b.wav", "audio/d/1/greetings/c.wav"
	tests := []struct {
		name  string
		code  map[string]string
		fails map[string]int
		// calls are the keys of each DeleteObjects call.
		calls string
		// retryable says the error is one the SDK's retry classifiers, and so the reset
		// engine, call retryable; "" for no error.
		err string
	}{
		{"all deleted at once", nil, nil, "[[a b c]]", ""},
		{"passing errors, then deleted", map[string]string{b: "SlowDown", c: "InternalError"}, map[string]int{b: 2, c: 1},
			"[[a b c] [b c] [b]]", ""},
		{"ServiceUnavailable, then deleted", map[string]string{a: "ServiceUnavailable"}, map[string]int{a: 1}, "[[a b c] [a]]", ""},
		{"still failing after the attempts", map[string]string{b: "SlowDown"}, map[string]int{b: 99},
			"[[a b c] [b] [b] [b] [b]]", "retryable"},
		{"access denied is not tried again", map[string]string{b: "AccessDenied", c: "SlowDown"}, map[string]int{b: 99, c: 1},
			"[[a b c]]", "permanent"},
	}
	short := map[string]string{a: "a", b: "b", c: "c"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the store backs off between attempts
			f := &api{code: tt.code, fails: tt.fails}
			err := s3store.New(f, "bucket").DeleteAudio(context.Background(), []string{a, b, c})
			var calls [][]string
			for _, keys := range f.calls {
				var named []string
				for _, k := range keys {
					named = append(named, short[k])
				}
				calls = append(calls, named)
			}
			if got := fmt.Sprint(calls); got != tt.calls {
				t.Errorf("calls = %s, want %s", got, tt.calls)
			}
			got := ""
			switch {
			case err == nil:
			case retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary:
				got = "retryable"
			default:
				got = "permanent"
			}
			if got != tt.err {
				t.Errorf("error %v is %q, want %q", err, got, tt.err)
			}
		})
	}
}
