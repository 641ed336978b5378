package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"moim/internal/apiclient"
)

// historyPage is how many messages one history request asks for at
// first; a node with a lower cap says so ("limit must be between 1 and
// N") and the check continues with N.
const historyPage = 500

var limitRE = regexp.MustCompile(`limit must be between 1 and (\d+)`)

// historyResult is what the persistence check found.
type historyResult struct {
	Checked      int64   `json:"acked_seqs"`
	Found        int64   `json:"found"`
	Complete     bool    `json:"complete"`
	RoomsMissing int     `json:"rooms_incomplete"`
	AfterDrainMS float64 `json:"complete_after_drain_ms"`
	AfterSendMS  float64 `json:"complete_after_send_ms"`
	Requests     int64   `json:"requests"`
	Error        string  `json:"error,omitempty"`
}

// roomHistory is one room's progress through the check.
type roomHistory struct {
	r      *room
	acked  []int64 // sorted, unique
	seen   map[int64]bool
	cursor int64 // every acked seq up to here is seen
	next   int   // index in acked of the first not yet seen
}

// advance moves the cursor over the acked seqs seen so far.
func (h *roomHistory) advance() {
	for h.next < len(h.acked) && h.seen[h.acked[h.next]] {
		h.cursor = h.acked[h.next]
		h.next++
	}
}

func (h *roomHistory) done() bool { return h.next == len(h.acked) }

// checkHistory reads every room's messages through the REST history API,
// GET /api/rooms/{id}/messages?after=SEQ&limit=500 as the room's creator,
// paging with after = the last seq of a full page, and polls (every 250
// ms, until -history-timeout) until every acked seq is there. Persistence
// is asynchronous (Redis streams drained to the store in batches), so the
// time it takes is part of the answer.
func (lg *loadgen) checkHistory(ctx context.Context, st *stage, acked map[*room][]int64) *historyResult {
	start := time.Now()
	res := &historyResult{}
	var rooms []*roomHistory
	for _, r := range st.rooms {
		seqs := slices.Clone(acked[r])
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		res.Checked += int64(len(seqs))
		h := &roomHistory{r: r, acked: seqs, seen: make(map[int64]bool, len(seqs))}
		if !h.done() {
			rooms = append(rooms, h)
		}
	}
	var requests atomic.Int64
	deadline := start.Add(lg.o.historyTimeout)
	for len(rooms) > 0 {
		_, err := parallel(ctx, len(rooms), lg.o.setupConc, func(i int) error {
			return lg.readHistory(ctx, rooms[i], &requests)
		})
		if err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && !retryable(err) {
				res.Error = fmt.Sprintf("GET /api/rooms/{id}/messages: %v", err)
				break
			}
			logf("history: %v (retrying)", err)
		}
		rooms = slices.DeleteFunc(rooms, (*roomHistory).done)
		if len(rooms) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.Requests = requests.Load()
	res.RoomsMissing = len(rooms)
	res.Found = res.Checked
	for _, h := range rooms {
		for _, s := range h.acked[h.next:] {
			if !h.seen[s] {
				res.Found--
			}
		}
	}
	res.Complete = res.Error == "" && len(rooms) == 0
	now := time.Now()
	res.AfterDrainMS = float64(now.Sub(start).Milliseconds())
	res.AfterSendMS = float64(now.Sub(st.sendEndTime()).Milliseconds())
	return res
}

// readHistory pages one room from its cursor to the end.
func (lg *loadgen) readHistory(ctx context.Context, h *roomHistory, requests *atomic.Int64) error {
	after := h.cursor
	token := h.r.members[0].acct.token
	for {
		var raw json.RawMessage
		limit := lg.historyLimit.Load()
		path := fmt.Sprintf("/api/rooms/%d/messages?after=%d&limit=%d", h.r.id, after, limit)
		requests.Add(1)
		if err := lg.do(ctx, http.MethodGet, path, token, nil, &raw); err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
				if m := limitRE.FindStringSubmatch(string(ae.Body)); m != nil {
					if n, _ := strconv.ParseInt(m[1], 10, 64); n > 0 && n < limit {
						if lg.historyLimit.CompareAndSwap(limit, n) {
							logf("history: the node caps limit at %d; paging by %d", n, n)
						}
						continue
					}
				}
			}
			return err
		}
		seqs, err := pageSeqs(raw)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		last := after
		for _, s := range seqs {
			h.seen[s] = true
			last = max(last, s)
		}
		h.advance()
		if int64(len(seqs)) < limit || last <= after || h.done() {
			return nil
		}
		after = last
	}
}

// pageSeqs reads the seqs of a history page: either a JSON array of
// messages or an object with one array of them ({"messages":[…]}).
func pageSeqs(raw json.RawMessage) ([]int64, error) {
	type msg struct {
		Seq int64 `json:"seq"`
	}
	var list []msg
	if err := json.Unmarshal(raw, &list); err == nil {
		return seqsOf(list, func(m msg) int64 { return m.Seq }), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("answer is neither a list nor an object: %.100q", raw)
	}
	keys := []string{"messages", "items", "data"}
	for k := range obj {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, &list); err == nil && len(v) > 0 && v[0] == '[' {
			return seqsOf(list, func(m msg) int64 { return m.Seq }), nil
		}
	}
	return nil, fmt.Errorf("answer has no list of messages: %.100q", raw)
}

func seqsOf[T any](list []T, seq func(T) int64) []int64 {
	out := make([]int64, 0, len(list))
	for _, m := range list {
		if s := seq(m); s > 0 {
			out = append(out, s)
		}
	}
	return out
}
