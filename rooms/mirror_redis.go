package rooms

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"moim/chatlog"
)

// RedisMirror keeps each room's member set in Redis so the hub can answer
// "may this user send to this room" with one SISMEMBER, no SQL on the send
// path. SQL stays the source of truth; the mirror is written in the same
// step as every membership change and rebuilt when Redis has lost it.
type RedisMirror struct {
	rdb  redis.UniversalClient
	keys chatlog.Keys
}

// NewRedisMirror returns a mirror that names its keys with keys.
func NewRedisMirror(rdb redis.UniversalClient, keys chatlog.Keys) *RedisMirror {
	return &RedisMirror{rdb: rdb, keys: keys}
}

// syncedKey marks that the mirror was built from SQL; it vanishes with the
// rest of the data when Redis restarts empty (as the embedded one does).
func (m *RedisMirror) syncedKey() string { return m.keys.Prefix + ":members-synced" }

// IsMember reports whether userID is in roomID.
func (m *RedisMirror) IsMember(ctx context.Context, roomID, userID int64) (bool, error) {
	ok, err := m.rdb.SIsMember(ctx, m.keys.Members(roomID), userID).Result()
	if err != nil {
		return false, fmt.Errorf("rooms: check membership of %d in %d: %w", userID, roomID, err)
	}
	return ok, nil
}

//go:embed open.lua
var openLua string

var openScript = redis.NewScript(openLua)

// Open starts a new room in Redis: its members, and its seq counter at 0,
// marked with the Redis instance it was made on, so the first message
// needs no restore and no look-up in the store (open.lua).
func (m *RedisMirror) Open(ctx context.Context, roomID int64, userIDs ...int64) error {
	k := m.keys
	keys := []string{k.Seq(roomID), k.Members(roomID), k.Instance(k.Shard(roomID)), k.SeqInstance(roomID)}
	if err := openScript.Run(ctx, m.rdb, keys, toAny(userIDs)...).Err(); err != nil {
		return fmt.Errorf("rooms: open room %d in redis: %w", roomID, err)
	}
	return nil
}

func toAny(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Add puts users into a room's member set.
func (m *RedisMirror) Add(ctx context.Context, roomID int64, userIDs ...int64) error {
	if err := m.rdb.SAdd(ctx, m.keys.Members(roomID), toAny(userIDs)...).Err(); err != nil {
		return fmt.Errorf("rooms: mirror %d members into room %d: %w", len(userIDs), roomID, err)
	}
	return nil
}

// Remove takes a user out of a room's member set.
func (m *RedisMirror) Remove(ctx context.Context, roomID, userID int64) error {
	if err := m.rdb.SRem(ctx, m.keys.Members(roomID), userID).Err(); err != nil {
		return fmt.Errorf("rooms: mirror removal of %d from room %d: %w", userID, roomID, err)
	}
	return nil
}

// Drop forgets a deleted room's member set.
func (m *RedisMirror) Drop(ctx context.Context, roomID int64) error {
	if err := m.rdb.Del(ctx, m.keys.Members(roomID)).Err(); err != nil {
		return fmt.Errorf("rooms: drop mirror of room %d: %w", roomID, err)
	}
	return nil
}

// Rebuild copies every membership from SQL into Redis unless the mirror is
// already marked as built. A removal racing it is not undone: each batch
// is read back from SQL after it is added (departed), and whoever SQL no
// longer holds is taken out again, since a removal deletes from SQL
// before it removes from the mirror.
func (m *RedisMirror) Rebuild(ctx context.Context, db *gorm.DB) (int, error) {
	n, err := m.rdb.Exists(ctx, m.syncedKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("rooms: check mirror: %w", err)
	}
	if n == 1 {
		return 0, nil
	}
	var copied int
	var batch []Member
	err = db.WithContext(ctx).Order("room_id, user_id").FindInBatches(&batch, 5000, func(*gorm.DB, int) error {
		pipe := m.rdb.Pipeline()
		for _, mb := range batch {
			pipe.SAdd(ctx, m.keys.Members(mb.RoomID), mb.UserID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		gone, err := departed(ctx, db, batch)
		if err != nil {
			return err
		}
		for _, mb := range gone {
			pipe.SRem(ctx, m.keys.Members(mb.RoomID), mb.UserID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		copied += len(batch) - len(gone)
		return nil
	}).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return copied, fmt.Errorf("rooms: rebuild mirror after %d members: %w", copied, err)
	}
	if err := m.rdb.Set(ctx, m.syncedKey(), "1", 0).Err(); err != nil {
		return copied, fmt.Errorf("rooms: mark mirror built: %w", err)
	}
	return copied, nil
}

// departed are the members of batch that SQL no longer holds: removed
// after the batch was read.
func departed(ctx context.Context, db *gorm.DB, batch []Member) ([]Member, error) {
	rooms := map[int64]bool{}
	var ids []int64
	for _, mb := range batch {
		if !rooms[mb.RoomID] {
			rooms[mb.RoomID] = true
			ids = append(ids, mb.RoomID)
		}
	}
	var now []Member
	if err := db.WithContext(ctx).Select("room_id", "user_id").Where("room_id IN ?", ids).Find(&now).Error; err != nil {
		return nil, fmt.Errorf("rooms: read back %d rooms' members: %w", len(ids), err)
	}
	still := make(map[[2]int64]bool, len(now))
	for _, mb := range now {
		still[[2]int64{mb.RoomID, mb.UserID}] = true
	}
	var gone []Member
	for _, mb := range batch {
		if !still[[2]int64{mb.RoomID, mb.UserID}] {
			gone = append(gone, mb)
		}
	}
	return gone, nil
}
