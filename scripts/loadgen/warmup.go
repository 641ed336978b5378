package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// warmupResult is what priming the stage's new rooms took.
type warmupResult struct {
	Rooms     int              `json:"rooms"`
	Acked     int              `json:"acked"`
	Attempts  int64            `json:"attempts"`
	Seconds   float64          `json:"seconds"`
	AckMS     latencySummary   `json:"ack_ms"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Delivered int64            `json:"delivered"`
	Expected  int64            `json:"expected"`
}

// warmup sends one message into every new room, by its creator, and
// waits for its ack and its deliveries before the measured window opens.
// A room's first message is not like the others: the node finds no seq
// counter for it in Redis and restores one from the message store first,
// so a stage of fresh rooms would otherwise measure that instead of chat.
// The warm-up's own figures are reported apart. A send refused with an
// error is retried with the same cid, as the protocol asks.
func (lg *loadgen) warmup(ctx context.Context, st *stage) *warmupResult {
	start := time.Now()
	res := &warmupResult{Rooms: len(st.rooms)}
	var acked, attempts, expected atomic.Int64
	_, _ = parallel(ctx, len(st.rooms), lg.o.warmupConc, func(i int) error {
		r := st.rooms[i]
		c := r.members[0]
		cid := warmCID + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + strconv.Itoa(i)
		for attempt := range 5 {
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			}
			attempts.Add(1)
			if err := c.sendWarmup(cid); err != nil {
				return err
			}
			select {
			case f := <-r.warm:
				if f.Type == "ack" {
					st.warmLat.record(time.Now().UnixNano() - cidSent(f.CID))
					acked.Add(1)
					expected.Add(int64(len(r.members)))
					return nil
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("room %d: no answer to the warm-up in 30s", r.id)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return fmt.Errorf("room %d: warm-up refused 5 times", r.id)
	})
	deadline := time.Now().Add(lg.o.drain + 5*time.Second)
	for st.warmDelivered.Load() < expected.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	res.Acked, res.Attempts = int(acked.Load()), attempts.Load()
	res.Seconds = round2(time.Since(start).Seconds())
	res.AckMS = st.warmLat.summary()
	res.Errors = st.warmErrs.snapshot()
	res.Delivered, res.Expected = st.warmDelivered.Load(), expected.Load()
	logf("stage %d: warm-up: %d of %d new rooms took a first message in %.1fs (%d sends; first-message ack %s; %d of %d deliveries)%s",
		st.n, res.Acked, res.Rooms, res.Seconds, res.Attempts, res.AckMS, res.Delivered, res.Expected, formatErrors(res.Errors))
	return res
}
