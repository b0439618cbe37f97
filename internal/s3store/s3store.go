// Package s3store keeps turnover's objects in its S3 bucket: voicemail and greeting
// audio under audio/{domain}/{ext}/, and job manifests under jobs/{domain}/{jobId}/.
package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"turnover/internal/turnover"
)

// API is the part of the S3 client the store uses.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
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

// DeleteAudio deletes recordings in DeleteObjects calls of up to 1,000 keys. Keys outside
// audio/ are refused. It fails if S3 reports any key it could not delete.
func (s *Store) DeleteAudio(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if !strings.HasPrefix(k, "audio/") {
			return fmt.Errorf("delete audio: key %q is not under audio/", k)
		}
	}
	for start := 0; start < len(keys); start += maxDelete {
		chunk := keys[start:min(start+maxDelete, len(keys))]
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, k := range chunk {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete audio: %w", err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete audio: %d keys not deleted, first %s: %s", len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Code))
		}
	}
	return nil
}

// PutManifest writes a job's users as a JSON array of batches, the shape the state
// machine's ItemReader reads, and returns where it is.
func (s *Store) PutManifest(ctx context.Context, domain, jobID string, batches []turnover.Batch) (turnover.ManifestLocation, error) {
	body, err := json.Marshal(batches)
	if err != nil {
		return turnover.ManifestLocation{}, fmt.Errorf("encode manifest of %s: %w", jobID, err)
	}
	loc := turnover.ManifestLocation{Bucket: s.bucket, Key: path.Join("jobs", domain, jobID, "manifest.json")}
	_, err = s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &loc.Bucket, Key: &loc.Key, Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	})
	if err != nil {
		return turnover.ManifestLocation{}, fmt.Errorf("put manifest of %s: %w", jobID, err)
	}
	return loc, nil
}
