package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// activity is a room's unread count and last message for one user, read
// from Redis (the hub keeps seq, read positions and recent messages there).
type activity struct {
	unread int64
	last   json.RawMessage
}

// activity reads, in one pipeline, each room's latest seq, the user's
// read position and the newest message.
func (m *Mirror) activity(ctx context.Context, roomIDs []int64, userID int64) (map[int64]activity, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	type cmds struct {
		seq  *redis.StringCmd
		read *redis.StringCmd
		last *redis.XMessageSliceCmd
		del  *redis.StringSliceCmd
	}
	pipe := m.rdb.Pipeline()
	cs := make([]cmds, len(roomIDs))
	uid := strconv.FormatInt(userID, 10)
	for i, r := range roomIDs {
		cs[i] = cmds{
			seq:  pipe.Get(ctx, m.keys.Seq(r)),
			read: pipe.HGet(ctx, m.keys.Reads(r), uid),
			last: pipe.XRevRangeN(ctx, m.keys.Recent(r), "+", "-", 1),
			del:  pipe.SMembers(ctx, m.keys.Deleted(r)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("rooms: read activity of %d rooms: %w", len(roomIDs), err)
	}
	out := make(map[int64]activity, len(roomIDs))
	for i, r := range roomIDs {
		seq, _ := cs[i].seq.Int64()
		read, _ := cs[i].read.Int64()
		a := activity{unread: max(seq-read, 0)}
		if entries := cs[i].last.Val(); len(entries) == 1 {
			if msg, ok := entries[0].Values["m"].(string); ok {
				a.last = json.RawMessage(msg)
				lastSeq, _, _ := strings.Cut(entries[0].ID, "-")
				for _, d := range cs[i].del.Val() {
					if d == lastSeq {
						a.last = Tombstone(a.last)
					}
				}
			}
		}
		out[r] = a
	}
	return out, nil
}

// Tombstone is a deleted message as clients see it: the entry with its
// seq, sender and time, the body cleared and "deleted":true.
func Tombstone(msg []byte) []byte {
	var m map[string]any
	if json.Unmarshal(msg, &m) != nil {
		return msg
	}
	m["body"] = ""
	m["deleted"] = true
	b, err := json.Marshal(m)
	if err != nil {
		return msg
	}
	return b
}
