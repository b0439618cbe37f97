// Package s3store keeps turnover's objects in its S3 bucket: voicemail and greeting
// audio under audio/{domain}/{ext}/, and job manifests under jobs/{domain}/{jobId}/.
package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"turnover/internal/backoff"
	"turnover/internal/turnover"
)

// API is the part of the S3 client the store uses.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	ListObjectVersions(context.Context, *s3.ListObjectVersionsInput, ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

var _ API = (*s3.Client)(nil)

// Store reads and writes one bucket.
type Store struct {
	s3     API
	bucket string
}

// New returns a store over the named bucket.
func New(api API, bucket string) *Store { return &Store{s3: api, bucket: bucket} }

// maxDelete is DeleteObjects' limit of keys per call.
const maxDelete = 1000

// AudioKey is where a user's recording lives: audio/{domain}/{ext}/{kind}/{id}.wav.
func AudioKey(domain, ext, kind, id string) string {
	return path.Join("audio", domain, ext, kind, id+".wav")
}

// PutAudio stores a recording under key.
func (s *Store) PutAudio(ctx context.Context, key string, wav []byte) error {
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(wav), ContentType: aws.String("audio/wav"),
	})
	if err != nil {
		return fmt.Errorf("put audio %s: %w", key, err)
	}
	return nil
}

// DeleteAudio deletes recordings so that none stays readable, whatever the bucket's
// versioning: keys go in DeleteObjects calls of up to 1,000; if S3 answers with delete
// markers (versioning on or suspended), every version and delete marker of those keys is
// deleted too. Keys outside audio/ are refused. Keys S3 reports it could not delete for a
// passing reason (SlowDown, InternalError, ServiceUnavailable…) are sent again, alone,
// with backoff and jitter; if some are still left, the error it returns is one the AWS
// SDK's retry classifiers (retry.IsErrorRetryables) call retryable. A key S3 refuses for
// any other reason (AccessDenied…) fails it at once with an error that is not.
func (s *Store) DeleteAudio(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		if !strings.HasPrefix(k, "audio/") {
			return fmt.Errorf("delete audio: key %q is not under audio/", k)
		}
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	versioned, err := s.deleteObjects(ctx, ids)
	if err != nil || !versioned {
		return err
	}
	return s.deleteVersions(ctx, keys)
}

// deleteAttempts bounds the DeleteObjects calls that send keys S3 failed to delete for a
// passing reason.
const deleteAttempts = 5

// passingCodes are the per-key error codes of DeleteObjects that may pass if the key is
// deleted again: S3 overloaded or failing inside. With the codes the AWS SDK retries a
// whole call for (retry.DefaultRetryableErrorCodes and DefaultThrottleErrorCodes), they
// say a key is worth sending again.
var passingCodes = map[string]bool{"InternalError": true, "ServiceUnavailable": true, "SlowDown": true, "RequestTimeout": true, "OperationAborted": true}

func passing(code string) bool {
	_, retryable := retry.DefaultRetryableErrorCodes[code]
	_, throttle := retry.DefaultThrottleErrorCodes[code]
	return passingCodes[code] || retryable || throttle
}

// keysLeftError says keys were still not deleted after deleteAttempts calls, each time
// for a passing reason. RetryableError is how the AWS SDK's retry classifiers know it.
type keysLeftError struct {
	keys        int
	first, code string
}

func (e *keysLeftError) Error() string {
	return fmt.Sprintf("delete audio: %d keys not deleted after %d attempts, first %s: %s", e.keys, deleteAttempts, e.first, e.code)
}

func (e *keysLeftError) RetryableError() bool { return true }

// deleteObjects deletes objects in calls of up to 1,000 and reports whether S3 left
// delete markers, which says the bucket keeps versions. Keys S3 failed to delete for a
// passing reason go again, alone; one it refused for another reason ends it.
func (s *Store) deleteObjects(ctx context.Context, ids []types.ObjectIdentifier) (markers bool, err error) {
	for start := 0; start < len(ids); start += maxDelete {
		pending := ids[start:min(start+maxDelete, len(ids))]
		for attempt := 1; len(pending) > 0; attempt++ {
			out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket, Delete: &types.Delete{Objects: pending}})
			if err != nil {
				return markers, fmt.Errorf("delete audio: %w", err)
			}
			for _, d := range out.Deleted {
				markers = markers || aws.ToBool(d.DeleteMarker)
			}
			pending = pending[:0:0]
			for _, e := range out.Errors {
				if !passing(aws.ToString(e.Code)) {
					return markers, fmt.Errorf("delete audio: key %s not deleted: %s", aws.ToString(e.Key), aws.ToString(e.Code))
				}
				pending = append(pending, types.ObjectIdentifier{Key: e.Key, VersionId: e.VersionId})
			}
			if len(pending) == 0 {
				break
			}
			if attempt == deleteAttempts {
				e := out.Errors[0]
				return markers, &keysLeftError{keys: len(pending), first: aws.ToString(e.Key), code: aws.ToString(e.Code)}
			}
			if err := backoff.Wait(ctx, attempt, 25*time.Millisecond); err != nil {
				return markers, err
			}
		}
	}
	return markers, nil
}

// deleteVersions deletes every version and delete marker of keys, listing the versions
// of each folder the keys are in.
func (s *Store) deleteVersions(ctx context.Context, keys []string) error {
	want := make(map[string]bool, len(keys))
	folders := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		folders[path.Dir(k)+"/"] = true
	}
	var ids []types.ObjectIdentifier
	for folder := range folders {
		p := s3.NewListObjectVersionsPaginator(s.s3, &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: aws.String(folder)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list audio versions under %s: %w", folder, err)
			}
			for _, v := range out.Versions {
				if want[aws.ToString(v.Key)] {
					ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
				}
			}
			for _, m := range out.DeleteMarkers {
				if want[aws.ToString(m.Key)] {
					ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
				}
			}
		}
	}
	_, err := s.deleteObjects(ctx, ids)
	return err
}

// GetManifest reads a job's batches back, or nil if the manifest is gone.
func (s *Store) GetManifest(ctx context.Context, domain, jobID string) ([]turnover.Batch, error) {
	key := manifestKey(domain, jobID)
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	var missing *types.NoSuchKey
	if errors.As(err, &missing) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get manifest of %s: %w", jobID, err)
	}
	defer out.Body.Close()
	var batches []turnover.Batch
	if err := json.NewDecoder(out.Body).Decode(&batches); err != nil {
		return nil, fmt.Errorf("decode manifest of %s: %w", jobID, err)
	}
	return batches, nil
}

func manifestKey(domain, jobID string) string {
	return path.Join("jobs", domain, jobID, "manifest.json")
}

// PutManifest writes a job's users as a JSON array of batches, the shape the state
// machine's ItemReader reads, and returns where it is.
func (s *Store) PutManifest(ctx context.Context, domain, jobID string, batches []turnover.Batch) (turnover.ManifestLocation, error) {
	body, err := json.Marshal(batches)
	if err != nil {
		return turnover.ManifestLocation{}, fmt.Errorf("encode manifest of %s: %w", jobID, err)
	}
	loc := turnover.ManifestLocation{Bucket: s.bucket, Key: manifestKey(domain, jobID)}
	_, err = s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &loc.Bucket, Key: &loc.Key, Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	})
	if err != nil {
		return turnover.ManifestLocation{}, fmt.Errorf("put manifest of %s: %w", jobID, err)
	}
	return loc, nil
}
