package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// maxPipeline bounds how many sends share one round trip.
const maxPipeline = 128

// sendReq is one send script call waiting for its turn in a pipeline.
type sendReq struct {
	keys []string
	args []any
	res  []string
	err  error
	done chan struct{}
}

// startPipeline runs the loop that batches concurrent sends: workers that
// send at the same moment share one Redis round trip instead of queueing
// for a connection each, which is what bounds throughput at high rates.
// At low rates a batch is one send and adds no wait. One loop, not more:
// what overlaps its round trip waits for the next, so batches grow with
// the load, where two loops split them into twice the round trips, each
// a read and a write for both sides (redis-server spent 6 % more per
// delivery with two, BENCHMARKS.md "Session 42"). Each round trip is
// observed by roundTrip.
func (b *RedisBroker) startPipeline(ctx context.Context, roundTrip prometheus.Observer) {
	b.reqs = make(chan *sendReq, 4*maxPipeline)
	b.roundTrip = roundTrip
	go b.pipeLoop(ctx)
}

// While sends come fast, a round trip waits for more (RedisConfig.Linger):
// redis-server spends much of a send's CPU per round trip rather than per
// send (reading the pipeline, writing its replies and the publishes,
// waking up), and so does the node. The rate is judged over at least
// lingerWindow of round trips, so a chance pair of sends at a low rate
// does not make the next one wait. At 5,000 msg/s on this project's
// 2-core VM a round trip carried about 13 sends instead of 2.4, and
// redis-server spent 14–29 % less per delivery, the node 4–10 %, the p99
// the same (docs/BENCHMARKS.md, "Session 45"); at 1,000 msg/s nothing
// waits.
const (
	// lingerRate is the send rate (a second) from which round trips
	// wait, counting the sends of the pipeline loop and the shard
	// connections (sendOn), not those that run their round trip
	// themselves (runSend, a Cluster's at low rates).
	lingerRate = 2500
	// lingerWindow is how often the rate is judged.
	lingerWindow = 10 * time.Millisecond
	// lingerFill ends the wait.
	lingerFill = 32
)

func (b *RedisBroker) pipeLoop(ctx context.Context) {
	batch := make([]*sendReq, 0, maxPipeline)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	var last time.Time // the last round trip's start
	for {
		var ok bool
		if batch, ok = nextBatch(ctx, b.reqs, batch, maxPipeline); !ok {
			return
		}
		if b.lingering.Load() && len(batch) < lingerFill {
			// Round trips at most every Linger: what the last one took
			// counts towards the wait.
			batch = fillBatch(b.reqs, batch, lingerFill, last.Add(b.cfg.Linger), wait)
		}
		last = time.Now()
		b.countSends(len(batch))
		b.runBatch(batch)
	}
}

// countSends adds n sends to the rate that decides whether round trips
// linger, judged every lingerWindow.
func (b *RedisBroker) countSends(n int) {
	now := time.Now()
	b.rate.Lock()
	defer b.rate.Unlock()
	b.rate.sent += n
	if d := now.Sub(b.rate.since); d >= lingerWindow {
		b.lingering.Store(b.cfg.Linger > 0 && float64(b.rate.sent) >= lingerRate*d.Seconds())
		b.rate.since, b.rate.sent = now, 0
	}
}

// sendOn runs the send script on the shard connection that carries the
// room's messages (subscriptions.sendConn): Redis writes the publish and
// the reply together, and the reply is read once the message was handed
// to delivery. A Redis that does not know the script gets it loaded as
// runBatch does, and the call is made once more.
func (b *RedisBroker) sendOn(ctx context.Context, c *shardConn, keys []string, args ...any) ([]string, error) {
	b.countSends(1)
	call := make([]any, 0, 3+len(keys)+len(args))
	call = append(call, "EVALSHA", sendScript.Hash(), len(keys))
	for _, k := range keys {
		call = append(call, k)
	}
	call = append(call, args...)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		res, err := c.do(ctx, call...)
		b.roundTrip.Observe(time.Since(start).Seconds())
		if attempt > 0 || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return res, err
		}
		if err := b.loadSendScript(ctx); err != nil {
			return nil, err
		}
	}
}

// runBatch sends a batch with EVALSHA in one pipeline, loading the script
// once if Redis does not know it (first use, or after a restart or a
// failover), after recording the instance (loadSendScript).
func (b *RedisBroker) runBatch(batch []*sendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmds := make([]*redis.Cmd, len(batch))
	for attempt := 0; ; attempt++ {
		pipe := b.rdb.Pipeline()
		for i, r := range batch {
			cmds[i] = sendScript.EvalSha(ctx, pipe, r.keys, r.args...)
		}
		start := time.Now()
		_, _ = pipe.Exec(ctx)
		b.roundTrip.Observe(time.Since(start).Seconds())
		if attempt > 0 || !anyNoScript(cmds) {
			break
		}
		if err := b.loadSendScript(ctx); err != nil {
			b.log.Warn("loading the send script failed", "err", err)
			break
		}
	}
	for i, r := range batch {
		r.res, r.err = cmds[i].StringSlice()
		close(r.done)
	}
}

// loadSendScript records, in each shard's Instance key, the run id of the
// Redis instance that holds it, then loads the send script. An instance
// without the script is new to this node's sends: restarted or promoted,
// it may hold older data than the counters that were handed out. Since no
// send runs on an instance before its script is loaded, and every load
// comes after this record, every send there finds the new run id and has
// its room's counter restored first (restore.lua). On a single Redis the
// records and the load share one connection, so they reach one instance
// in that order even if it restarts again meanwhile; on a Cluster the
// load goes to every primary after the records.
func (b *RedisBroker) loadSendScript(ctx context.Context) error {
	pipe := b.rdb.Pipeline()
	marks := make([]*redis.Cmd, b.keys.Shards)
	for s := range marks {
		marks[s] = instanceScript.Eval(ctx, pipe, []string{b.keys.Instance(s), b.keys.FirstInstance(s)})
	}
	_, single := b.rdb.(*redis.Client)
	if single {
		pipe.ScriptLoad(ctx, sendLua)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: record Redis instance and load the send script: %w", err)
	}
	changed := 0
	for _, m := range marks {
		if n, _ := m.Int(); n == 1 {
			changed++
		}
	}
	if changed > 0 {
		b.log.Warn("Redis instance new to persistence shards (restart or failover): each room's seq counter there is restored past its reserved block before its next message",
			"shards", changed)
	}
	if !single {
		if err := sendScript.Load(ctx, b.rdb).Err(); err != nil {
			return fmt.Errorf("hub: load the send script: %w", err)
		}
	}
	return nil
}

func anyNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

// runSend queues one send script call and waits for its reply. A call
// that finds no other under way runs it itself, unless the pipeline
// lingers: at low rates a batch is one send anyway, and the caller
// waiting on its own round trip spares the hand-offs to a pipeline loop
// and back; at high rates it would be a round trip for one send (one in
// two round trips at 5,000 msg/s).
func (b *RedisBroker) runSend(ctx context.Context, keys []string, args ...any) ([]string, error) {
	r := &sendReq{keys: keys, args: args, done: make(chan struct{})}
	defer b.sending.Add(-1)
	if b.sending.Add(1) == 1 && !b.lingering.Load() {
		b.runBatch([]*sendReq{r})
		return r.res, r.err
	}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		// The script may still run; a retry with the same cid is deduplicated.
		return nil, ctx.Err()
	}
}
