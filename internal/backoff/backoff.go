// Package backoff waits between tries of a partial AWS write (unprocessed items, keys or
// entries a batch call gave back), the way the SDK waits between whole retries but
// starting at milliseconds: exponential, with full jitter.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Max is the longest one wait lasts.
const Max = 2 * time.Second

// Wait sleeps before try n (1, 2, …): a random time up to base·2ⁿ, at most Max. It
// returns ctx's error if ctx ends first.
func Wait(ctx context.Context, n int, base time.Duration) error {
	ceil := min(base<<min(n, 16), Max)
	t := time.NewTimer(rand.N(ceil) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
