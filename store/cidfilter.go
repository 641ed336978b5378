package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"

	"moim/chatlog"
)

// cidFilter tells, without a query, that the messages table holds no
// message under a (room, from, cid): a Bloom filter of every key the table
// holds, so a new message (nearly every one) skips the lookup by cid its
// commit made on a reader connection, a statement of tens of microseconds
// on the ack's path (docs/BENCHMARKS.md, "Session 23"). It may answer
// "maybe" for a key the table lacks (under 1 % of keys), never "no" for
// one it holds: every key the store writes to the messages table is
// added before it leaves the store's memory (journaled) or as its
// transaction commits, and the keys of earlier runs are read in by a
// scan at start, in chunks, each a read transaction of its own; until
// that scan is done, every key is a "maybe".
type cidFilter struct {
	seed maphash.Seed
	// first is the first part's capacity in keys (bloomFirst).
	first int

	mu sync.Mutex
	// parts are filters of growing capacity; keys go into the last.
	parts []bloom
	// started: keys are kept from now on (a store whose filter is never
	// used, the batcher's, keeps none); ready: the scan is done.
	started, ready bool
}

// bloom is one Bloom filter of bloomBits bits a key for limit keys, n
// of them added.
type bloom struct {
	bits     []uint64
	n, limit int
}

const (
	// bloomBits and bloomHashes give about 0.8 % false "maybe"s per part.
	bloomBits   = 10
	bloomHashes = 7
	// bloomFirst is the first part's capacity, 1.25 MB of bits; each
	// next part holds twice the last.
	bloomFirst = 1 << 20
)

func newCIDFilter() *cidFilter {
	return &cidFilter{seed: maphash.MakeSeed(), first: bloomFirst}
}

// hash is k's two hashes for double hashing (the second odd, never 0,
// so a key's bloomHashes bits differ).
func (f *cidFilter) hash(k cidKey) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(k.room))
	binary.LittleEndian.PutUint64(b[8:], uint64(k.from))
	_, _ = h.Write(b[:])
	_, _ = h.WriteString(k.cid)
	h1 := h.Sum64()
	return h1, bits.RotateLeft64(h1*0x9e3779b97f4a7c15, 31) | 1
}

// start makes f keep the keys added from now on. The caller must hold
// off every writer of the messages table meanwhile, so that what one
// wrote before is in the table when the scan (fill) reads it.
func (f *cidFilter) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = true
}

// add records that the messages table may hold k, once f is started.
func (f *cidFilter) add(k cidKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		f.addHashed(f.hash(k))
	}
}

// addAll adds every key of m.
func (f *cidFilter) addAll(m map[cidKey]chatlog.Accepted) {
	for k := range m {
		f.add(k)
	}
}

func (f *cidFilter) addHashed(h1, h2 uint64) {
	if len(f.parts) == 0 || f.parts[len(f.parts)-1].n >= f.parts[len(f.parts)-1].limit {
		limit := f.first
		if len(f.parts) > 0 {
			limit = 2 * f.parts[len(f.parts)-1].limit
		}
		f.parts = append(f.parts, bloom{bits: make([]uint64, limit*bloomBits/64), limit: limit})
	}
	p := &f.parts[len(f.parts)-1]
	for i := range uint64(bloomHashes) {
		w, mask := p.bit(h1, h2, i)
		p.bits[w] |= mask
	}
	p.n++
}

// bit is the word and mask of a key's i-th bit in p.
func (p *bloom) bit(h1, h2, i uint64) (int, uint64) {
	b := (h1 + i*h2) % uint64(len(p.bits)*64)
	return int(b / 64), 1 << (b % 64)
}

// has reports whether p has every one of a key's bits.
func (p *bloom) has(h1, h2 uint64) bool {
	for i := range uint64(bloomHashes) {
		if w, mask := p.bit(h1, h2, i); p.bits[w]&mask == 0 {
			return false
		}
	}
	return true
}

// mayHold reports whether the messages table may hold k: false only once
// the scan at start is done and no part has every one of k's bits.
func (f *cidFilter) mayHold(k cidKey) bool {
	h1, h2 := f.hash(k)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return true
	}
	for _, p := range f.parts {
		if p.has(h1, h2) {
			return true
		}
	}
	return false
}

// scanChunk is how many keys one read transaction of the scan reads: a
// reader holding its snapshot long keeps the checkpointer from rewinding
// the write-ahead log.
const scanChunk = 10000

// fill adds the keys the messages table holds, through the messages_cid
// index in key order, a chunk per query, then marks f ready; it gives up
// unready once stop is closed. Keys written meanwhile are added by the
// writer, whichever chunk's snapshot lacks them.
func (f *cidFilter) fill(stop <-chan struct{}, db *sql.DB) error {
	last := cidKey{room: math.MinInt64, from: math.MinInt64} // before every key
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n, err := f.fillChunk(context.Background(), db, &last)
		if err != nil {
			return fmt.Errorf("store: read the cids of stored messages: %w", err)
		}
		if n < scanChunk {
			break
		}
	}
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()
	return nil
}

// fillChunk adds up to scanChunk keys after last, moves last to the last
// one read and returns how many it read.
func (f *cidFilter) fillChunk(ctx context.Context, db *sql.DB, last *cidKey) (int, error) {
	rows, err := db.QueryContext(ctx, `SELECT room, from_user, cid FROM messages INDEXED BY messages_cid
		WHERE (room, from_user, cid) > (?, ?, ?) ORDER BY room, from_user, cid LIMIT ?`,
		last.room, last.from, last.cid, scanChunk)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if err := rows.Scan(&last.room, &last.from, &last.cid); err != nil {
			return n, err
		}
		f.add(*last)
		n++
	}
	return n, rows.Err()
}
