package main

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"moim/chatlog"
	"moim/rooms"
	"moim/sqldb"
)

// TestMirrorRebuildKeepsARacingKick is issue 19's item 9: a rebuild of
// the Redis membership mirror reads a member, the member is kicked (SQL,
// then the mirror), and the rebuild then copies what it read. The kick
// must stick.
func TestMirrorRebuildKeepsARacingKick(t *testing.T) {
	cfg := testConfig(t)
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})

	opt, err := redis.ParseURL(serviceURL(t, envRedis, "redis-server"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	prefix := randomName("tmirror")
	t.Cleanup(func() { _, _ = deleteKeys(rdb, prefix+":*") })
	mirror := rooms.NewRedisMirror(rdb, chatlog.Keys{Prefix: prefix, Shards: 4})

	// The rebuild reads through its own connection, which kicks Bob right
	// after its first read, before it copies anything.
	db, err := sqldb.OpenMySQL(cfg.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(db) })
	ctx := context.Background()
	var kick sync.Once
	if err := db.Callback().Query().After("gorm:query").Register("test:kick", func(*gorm.DB) {
		kick.Do(func() {
			if err := n.backends.sql.Exec("DELETE FROM members WHERE room_id = ? AND user_id = ?", room.ID, bob.id).Error; err != nil {
				t.Error(err)
			}
			if err := mirror.Remove(ctx, room.ID, bob.id); err != nil {
				t.Error(err)
			}
		})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Rebuild(ctx, db); err != nil {
		t.Fatal(err)
	}
	if in, err := mirror.IsMember(ctx, room.ID, bob.id); err != nil || in {
		t.Fatalf("kicked Bob in the rebuilt mirror: %v %v", in, err)
	}
	if in, err := mirror.IsMember(ctx, room.ID, alice.id); err != nil || !in {
		t.Fatalf("Alice in the rebuilt mirror: %v %v", in, err)
	}
}
