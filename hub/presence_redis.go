package hub

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// presenceTTL is how long a node's claim that a user is online lasts
// without a heartbeat; heartbeats come every third of it.
const presenceTTL = 60 * time.Second

// setOnline claims or drops user's presence on this node and reports
// whether the user's global presence changed (offline ↔ online).
func (b *RedisBroker) setOnline(ctx context.Context, node string, user int64, online bool) (bool, error) {
	key := b.keys.Presence(user)
	now := time.Now()
	res, err := presenceScript.Run(ctx, b.rdb, []string{key}, node, now.UnixMilli(), now.Add(presenceTTL).UnixMilli(), boolArg(online), int(presenceTTL.Seconds())).Int()
	if err != nil {
		return false, fmt.Errorf("hub: presence of %d: %w", user, err)
	}
	return res == 1, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// heartbeat renews this node's claim for every user connected here.
func (b *RedisBroker) heartbeat(ctx context.Context, node string, users []int64) error {
	exp := time.Now().Add(presenceTTL).UnixMilli()
	pipe := b.rdb.Pipeline()
	for _, u := range users {
		key := b.keys.Presence(u)
		pipe.ZAdd(ctx, key, redis.Z{Score: float64(exp), Member: node})
		pipe.Expire(ctx, key, presenceTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: presence heartbeat for %d users: %w", len(users), err)
	}
	return nil
}

// online reports which of users are online on any node.
func (b *RedisBroker) online(ctx context.Context, users []int64) (map[int64]bool, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	pipe := b.rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(users))
	for i, u := range users {
		counts[i] = pipe.ZCount(ctx, b.keys.Presence(u), now, "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("hub: read presence of %d users: %w", len(users), err)
	}
	out := make(map[int64]bool, len(users))
	for i, u := range users {
		out[u] = counts[i].Val() > 0
	}
	return out, nil
}
