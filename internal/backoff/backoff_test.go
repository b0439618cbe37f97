package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"turnover/internal/backoff"
)

func TestWaitStaysUnderItsCeiling(t *testing.T) {
	for _, tt := range []struct {
		n    int
		base time.Duration
		most time.Duration
	}{
		{1, 5 * time.Millisecond, 10 * time.Millisecond},
		{3, 5 * time.Millisecond, 40 * time.Millisecond},
		{40, time.Second, backoff.Max},
	} {
		for range 3 {
			start := time.Now()
			if err := backoff.Wait(context.Background(), tt.n, tt.base); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > tt.most+50*time.Millisecond {
				t.Errorf("Wait(%d, %v) took %v, want at most %v", tt.n, tt.base, took, tt.most)
			}
		}
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := backoff.Wait(ctx, 40, time.Second); !errors.Is(err, context.Canceled) || time.Since(start) > 100*time.Millisecond {
		t.Errorf("Wait on an ended context: %v after %v", err, time.Since(start))
	}
}
