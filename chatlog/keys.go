package chatlog

import "strconv"

// Keys names every Redis key and channel of a room. All of one room's keys
// carry the same hash tag, its shard, so a room's Lua script touches one
// Redis Cluster slot together with that shard's persistence stream.
type Keys struct {
	// Prefix starts every key (MOIM_REDIS_PREFIX).
	Prefix string
	// Shards is how many persistence streams rooms are spread over
	// (MOIM_STREAM_SHARDS). It must not change while data exists.
	Shards int
}

// Shard is the persistence shard a room belongs to.
func (k Keys) Shard(roomID int64) int { return int(uint64(roomID) % uint64(k.Shards)) }

func (k Keys) room(roomID int64, what string) string {
	return k.Prefix + ":{" + strconv.Itoa(k.Shard(roomID)) + "}:room:" + strconv.FormatInt(roomID, 10) + ":" + what
}

// Members is the set of user ids in a room.
func (k Keys) Members(roomID int64) string { return k.room(roomID, "members") }

// Seq is the room's last assigned message sequence number.
func (k Keys) Seq(roomID int64) string { return k.room(roomID, "seq") }

// Recent is the room's capped stream of recent messages; entry ids are
// "<seq>-0", so a range read after a seq is one XRANGE.
func (k Keys) Recent(roomID int64) string { return k.room(roomID, "recent") }

// CIDs is a hash of the room's sends accepted in one time bucket (accept
// time in ms divided by the dedupe window): CIDField → "<seq>:<ts>", so a
// retried send is acknowledged again instead of stored twice. One hash per
// room and bucket rather than one key per send: a key per message made
// every other key's lookup slower (millions of keys and expiries in the
// main dictionaries) and cost Redis 201 bytes a message
// (docs/BENCHMARKS.md, "Session 44").
func (k Keys) CIDs(roomID, bucket int64) string {
	return k.room(roomID, "cids:"+strconv.FormatInt(bucket, 10))
}

// CIDField names one (user, client id) send in a CIDs hash; client ids
// have no ':' (hub/protocol.go), so the name is unambiguous.
func CIDField(userID int64, cid string) string {
	return strconv.FormatInt(userID, 10) + ":" + cid
}

// Reads is a hash of user id → highest seq the user has read.
func (k Keys) Reads(roomID int64) string { return k.room(roomID, "reads") }

// Channel is the pub/sub channel a room's events are delivered on.
func (k Keys) Channel(roomID int64) string { return k.room(roomID, "ch") }

// Persist is one shard of the durable stream the batcher drains into the
// message store.
func (k Keys) Persist(shard int) string { return k.Prefix + ":{" + strconv.Itoa(shard) + "}:persist" }

// Probe is the channel each node publishes its own name on to check that
// its subscription to the shard still delivers.
func (k Keys) Probe(shard int) string { return k.Prefix + ":{" + strconv.Itoa(shard) + "}:probe" }

// MembershipChannel carries membership changes to every node.
func (k Keys) MembershipChannel() string { return k.Prefix + ":membership" }

// Presence is a sorted set of the nodes a user is connected to, scored
// by when that node's claim expires; the user is online while any claim
// is current, so a crashed node's users go offline on their own.
func (k Keys) Presence(userID int64) string {
	return k.Prefix + ":{u" + strconv.FormatInt(userID, 10) + "}:presence"
}

// Deleted is the set of a room's deleted seqs, applied to what sync
// serves from the recent stream.
func (k Keys) Deleted(roomID int64) string { return k.room(roomID, "deleted") }

// Edited is a hash of a room's edited seqs → the edited message JSON,
// applied to what sync serves from the recent stream (whose entries
// cannot change in place).
func (k Keys) Edited(roomID int64) string { return k.room(roomID, "edited") }

// SeqHi is the highest seq of the room reserved in the store: the send
// script hands out seqs up to it, and a restored counter starts past it.
func (k Keys) SeqHi(roomID int64) string { return k.room(roomID, "seqhi") }

// Restored marks, for a while after a seq counter was restored, that a
// cid Redis does not know may still name a stored message.
func (k Keys) Restored(roomID int64) string { return k.room(roomID, "restored") }

// Instance holds the run id of the Redis instance that holds the shard's
// keys, recorded before the send script is loaded into an instance (whose
// script cache starts empty: a restart or a promoted replica). Run ids are
// new at every start and differ between a primary and its replicas.
func (k Keys) Instance(shard int) string {
	return k.Prefix + ":{" + strconv.Itoa(shard) + "}:instance"
}

// FirstInstance holds the run id of the instance under which the shard
// was first marked (Instance was absent): counters found there without a
// SeqInstance predate the marks (a node that did not record instances)
// and are adopted as they are, not restored past their block.
func (k Keys) FirstInstance(shard int) string {
	return k.Prefix + ":{" + strconv.Itoa(shard) + "}:instance-first"
}

// SeqInstance is the Instance value under which the room's seq counter
// was last restored: when the shard's Instance differs, Redis may have
// come back with an older counter, and the counter is restored again.
func (k Keys) SeqInstance(roomID int64) string { return k.room(roomID, "seqinstance") }
