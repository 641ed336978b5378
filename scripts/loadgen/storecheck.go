package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mopts "go.mongodb.org/mongo-driver/v2/mongo/options"
)

// storeResult is what the message-store check (-store-check) found.
type storeResult struct {
	Checked int64 `json:"acked_seqs"`
	Found   int64 `json:"found"`
	// Stored is every document in the stage's rooms: the acked messages,
	// the warm-ups and any accepted message whose ack never arrived.
	Stored int64 `json:"stored"`
	// DuplicateCIDs counts client ids stored under more than one seq.
	DuplicateCIDs int64   `json:"duplicate_cids"`
	Complete      bool    `json:"complete"`
	RoomsMissing  int     `json:"rooms_incomplete"`
	AfterDrainMS  float64 `json:"complete_after_drain_ms"`
	Error         string  `json:"error,omitempty"`
}

func (s *storeResult) String() string {
	switch {
	case s.Error != "":
		return fmt.Sprintf("INCOMPLETE: %s (%d of %d acked seqs found)", s.Error, s.Found, s.Checked)
	case !s.Complete:
		return fmt.Sprintf("INCOMPLETE after %.0f ms: %d of %d acked seqs stored (%d rooms incomplete), %d documents, %d cids stored twice",
			s.AfterDrainMS, s.Found, s.Checked, s.RoomsMissing, s.Stored, s.DuplicateCIDs)
	}
	return fmt.Sprintf("all %d acked seqs stored %.0f ms after the drain; %d documents, %d cids stored twice",
		s.Checked, s.AfterDrainMS, s.Stored, s.DuplicateCIDs)
}

// checkStore reads the stage's rooms straight from the message store
// (the batcher writes it asynchronously, so it polls every 250 ms until
// -history-timeout) until every acked seq is there, then counts the
// documents and the cids stored under two seqs.
func (lg *loadgen) checkStore(ctx context.Context, st *stage, acked map[*room][]int64) *storeResult {
	start := time.Now()
	res := &storeResult{}
	fail := func(err error) *storeResult {
		res.Error = err.Error()
		res.AfterDrainMS = float64(time.Since(start).Milliseconds())
		return res
	}
	u, err := url.Parse(lg.o.storeURI)
	if err != nil {
		return fail(fmt.Errorf("-store-check: %w", err))
	}
	dbName := strings.Trim(u.Path, "/")
	if dbName == "" {
		dbName = "moim"
	}
	client, err := mongo.Connect(mopts.Client().ApplyURI(lg.o.storeURI).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		return fail(fmt.Errorf("-store-check: %w", err))
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database(dbName).Collection("messages")

	type roomCheck struct {
		r     *room
		acked []int64
		seqs  map[int64]string // seq → cid
	}
	var todo, all []*roomCheck
	for _, r := range st.rooms {
		seqs := slices.Compact(slices.Sorted(slices.Values(acked[r])))
		res.Checked += int64(len(seqs))
		rc := &roomCheck{r: r, acked: seqs}
		all = append(all, rc)
		todo = append(todo, rc)
	}
	read := func(rc *roomCheck) error {
		cur, err := coll.Find(ctx, bson.D{{Key: "room", Value: rc.r.id}},
			mopts.Find().SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "cid", Value: 1}, {Key: "_id", Value: 0}}))
		if err != nil {
			return fmt.Errorf("read room %d: %w", rc.r.id, err)
		}
		var docs []struct {
			Seq int64  `bson:"seq"`
			CID string `bson:"cid"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return fmt.Errorf("read room %d: %w", rc.r.id, err)
		}
		rc.seqs = make(map[int64]string, len(docs))
		for _, d := range docs {
			rc.seqs[d.Seq] = d.CID
		}
		return nil
	}
	complete := func(rc *roomCheck) bool {
		for _, s := range rc.acked {
			if _, ok := rc.seqs[s]; !ok {
				return false
			}
		}
		return true
	}
	deadline := start.Add(lg.o.historyTimeout)
	for {
		var err error
		todo = slices.DeleteFunc(todo, func(rc *roomCheck) bool {
			if err == nil {
				err = read(rc)
			}
			return err == nil && complete(rc)
		})
		if err != nil {
			logf("store: %v (retrying)", err)
		}
		if len(todo) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.AfterDrainMS = float64(time.Since(start).Milliseconds())
	res.RoomsMissing = len(todo)
	res.Complete = len(todo) == 0
	// One last read of every room for the totals.
	for _, rc := range all {
		if err := read(rc); err != nil {
			return fail(err)
		}
		seen := map[string]bool{}
		for _, s := range rc.acked {
			if _, ok := rc.seqs[s]; ok {
				res.Found++
			}
		}
		for _, cid := range rc.seqs {
			res.Stored++
			if cid != "" && seen[cid] {
				res.DuplicateCIDs++
			}
			seen[cid] = true
		}
	}
	return res
}
