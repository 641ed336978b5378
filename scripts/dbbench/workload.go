package main

import (
	"moim/chatlog"

	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// backend is the message store's interface as the hub uses it; *store.Mongo
// (MongoDB wire protocol) has exactly these methods, the SQL backend mirrors
// them, and both answer with the msg events the hub sends to clients.
type backend interface {
	Insert(ctx context.Context, msgs []chatlog.Entry) error
	After(ctx context.Context, room, after int64, limit int) ([][]byte, error)
	Before(ctx context.Context, room, before int64, limit int) ([][]byte, error)
	Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error)
}

// The limits the hub uses: a history page, the sync cap per room
// (hub.Config.SyncLimit) and a search page (GET .../search default).
const (
	pageLimit   = 50
	syncLimit   = 500
	searchLimit = 20
	// newest is the hub's "before" for the newest page (Hub.Before).
	newest = int64(1) << 62
)

// searchTerm is what the search operation looks for. Korean chat attaches
// particles and verbs to nouns, so most hits are inside longer words.
const searchTerm = "정산"

// words make up message bodies; none contains searchTerm.
var words = strings.Fields(`안녕하세요 오늘 내일 모임 회비 산행 등산 점심 저녁 장소 시간 확인
부탁드립니다 감사합니다 ㅋㅋㅋ 네 좋아요 사진 공지 다음주 토요일 일요일 참석 불참 회장님 총무님
입금 완료 계좌 얼마 만원 주차 출발 도착 늦어요 먼저 갑니다 수고하셨습니다 ok thanks see you at
the park lol meeting photo link done sure sorry late coffee tomorrow tonight`)

// termWords each contain searchTerm; one is put in searchShare of bodies.
var termWords = []string{"정산", "정산은", "정산해요", "회비정산", "정산했어요"}

const searchShare = 0.05

// corpus generates the messages and remembers what every room holds, so
// each read knows the answer it must get.
type corpus struct {
	rooms int
	mu    sync.Mutex
	rng   *rand.Rand
	// per room, index room-1: highest seq (seqs run 1, 2, … without gaps),
	// how many bodies contain searchTerm, and the newest such seq.
	maxSeq    []int64
	matches   []int32
	lastMatch []int64
	total     int64
	bodyBytes int64
	ts0       int64
}

func newCorpus(rooms int, seed uint64) *corpus {
	return &corpus{
		rooms: rooms, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		maxSeq: make([]int64, rooms), matches: make([]int32, rooms), lastMatch: make([]int64, rooms),
		ts0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
	}
}

// batch returns n new messages, each in a room picked at random (a batcher
// drains a stream shard that interleaves many rooms).
func (c *corpus) batch(n int) []chatlog.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]chatlog.Entry, n)
	var b strings.Builder
	for i := range out {
		r := c.rng.IntN(c.rooms)
		c.maxSeq[r]++
		seq := c.maxSeq[r]
		b.Reset()
		nw := 2 + c.rng.IntN(13)
		term := c.rng.Float64() < searchShare
		at := c.rng.IntN(nw)
		for w := range nw {
			if w > 0 {
				b.WriteByte(' ')
			}
			if term && w == at {
				b.WriteString(termWords[c.rng.IntN(len(termWords))])
			} else {
				b.WriteString(words[c.rng.IntN(len(words))])
			}
		}
		if term {
			c.matches[r]++
			c.lastMatch[r] = seq
		}
		from := 1 + c.rng.Int64N(100000)
		m := &chatlog.Message{
			Room: int64(r + 1), Seq: seq, From: from, Name: "회원" + strconv.FormatInt(from, 10),
			Body: b.String(), CID: strconv.FormatUint(c.rng.Uint64(), 16),
			TS: c.ts0 + c.total*50, Kind: chatlog.KindText,
		}
		if seq > 1 && c.rng.IntN(20) == 0 {
			m.ReplyTo = 1 + c.rng.Int64N(seq-1)
		}
		m.Type = "msg"
		raw, _ := json.Marshal(m)
		out[i] = chatlog.Entry{Message: m, Raw: raw, Room: m.Room, Seq: m.Seq}
		c.total++
		c.bodyBytes += int64(len(m.Body))
	}
	return out
}

// query is one read with the answer it must get: want messages, the first
// of them with seq first.
type query struct {
	room, seq int64
	want      int
	first     int64
}

// readOp is one of the chat's reads.
type readOp struct {
	name string
	// pick chooses a room and arguments; the corpus must not change
	// while reads run.
	pick func(c *corpus, rng *rand.Rand) query
	run  func(ctx context.Context, b backend, q query) ([][]byte, error)
}

// pickRoom is a random room holding at least one message.
func (c *corpus) pickRoom(rng *rand.Rand) (room int64, max int64) {
	for {
		r := rng.IntN(c.rooms)
		if c.maxSeq[r] > 0 {
			return int64(r + 1), c.maxSeq[r]
		}
	}
}

var readOps = []readOp{
	{
		name: "last 50 of a room",
		pick: func(c *corpus, rng *rand.Rand) query {
			room, m := c.pickRoom(rng)
			return query{room: room, seq: newest, want: int(min(pageLimit, m)), first: m}
		},
		run: func(ctx context.Context, b backend, q query) ([][]byte, error) {
			return b.Before(ctx, q.room, q.seq, pageLimit)
		},
	},
	{
		name: "50 before seq N",
		pick: func(c *corpus, rng *rand.Rand) query {
			room, m := c.pickRoom(rng)
			n := 1 + rng.Int64N(m)
			return query{room: room, seq: n, want: int(min(pageLimit, n-1)), first: n - 1}
		},
		run: func(ctx context.Context, b backend, q query) ([][]byte, error) {
			return b.Before(ctx, q.room, q.seq, pageLimit)
		},
	},
	{
		name: "after seq N (sync)",
		pick: func(c *corpus, rng *rand.Rand) query {
			room, m := c.pickRoom(rng)
			n := rng.Int64N(m)
			return query{room: room, seq: n, want: int(min(syncLimit, m-n)), first: n + 1}
		},
		run: func(ctx context.Context, b backend, q query) ([][]byte, error) {
			return b.After(ctx, q.room, q.seq, syncLimit)
		},
	},
	{
		name: "search in a room",
		pick: func(c *corpus, rng *rand.Rand) query {
			room, _ := c.pickRoom(rng)
			return query{room: room, want: int(min(searchLimit, c.matches[room-1])), first: c.lastMatch[room-1]}
		},
		run: func(ctx context.Context, b backend, q query) ([][]byte, error) {
			return b.Search(ctx, q.room, searchTerm, searchLimit)
		},
	},
}

// check compares a read's answer with what the corpus says it must be.
func check(q query, got [][]byte) error {
	if len(got) != q.want {
		return fmt.Errorf("room %d: got %d messages, want %d", q.room, len(got), q.want)
	}
	if len(got) == 0 {
		return nil
	}
	var m struct {
		Room int64 `json:"room"`
		Seq  int64 `json:"seq"`
	}
	if err := json.Unmarshal(got[0], &m); err != nil {
		return fmt.Errorf("room %d: first message: %w", q.room, err)
	}
	if m.Room != q.room || m.Seq != q.first {
		return fmt.Errorf("room %d: first message is room %d seq %d, want seq %d", q.room, m.Room, m.Seq, q.first)
	}
	return nil
}
