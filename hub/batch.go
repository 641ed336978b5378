package hub

import (
	"context"
	"time"
)

// nextBatch waits for one item on ch, then takes whatever else is already
// queued, up to limit, without waiting for more: a batch is one item when
// the load is light and many when it is heavy. ok is false once ctx ends.
func nextBatch[T any](ctx context.Context, ch <-chan T, batch []T, limit int) (_ []T, ok bool) {
	batch = batch[:0]
	select {
	case <-ctx.Done():
		return batch, false
	case v := <-ch:
		batch = append(batch, v)
	}
	for len(batch) < limit {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch, true
		}
	}
	return batch, true
}

// fillBatch adds what arrives on ch to batch until it holds limit items or
// until passes, whichever comes first; t is a stopped timer the call arms
// and stops again. An until already past returns batch as it is.
func fillBatch[T any](ch <-chan T, batch []T, limit int, until time.Time, t *time.Timer) []T {
	d := time.Until(until)
	if d <= 0 {
		return batch
	}
	t.Reset(d)
	defer t.Stop()
	for len(batch) < limit {
		select {
		case v := <-ch:
			batch = append(batch, v)
		case <-t.C:
			return batch
		}
	}
	return batch
}
