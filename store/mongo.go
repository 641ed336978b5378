package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"moim/chatlog"
)

// Mongo is the message store shared by nodes: the messages collection and
// the small ones beside it (read positions, seq reservations, gaps,
// refused conflicts).
type Mongo struct {
	db                                   *mongo.Database
	msgs, reads, blocks, gaps, conflicts *mongo.Collection
	reserving                            sync.Mutex
}

// OpenMongo returns the store on db, creating its indexes if they are
// missing.
func OpenMongo(ctx context.Context, db *mongo.Database) (*Mongo, error) {
	m := &Mongo{
		db:   db,
		msgs: db.Collection("messages"), reads: db.Collection("reads"), blocks: db.Collection("seqblocks"),
		gaps: db.Collection("gaps"), conflicts: db.Collection("conflicts"),
	}
	unique := options.Index().SetUnique(true)
	for _, ix := range []struct {
		coll *mongo.Collection
		name string
		keys bson.D
		opts *options.IndexOptionsBuilder
	}{
		// Unique: a replayed batch inserts nothing twice. It serves history
		// pages, sync, max seq and search within a room.
		{m.msgs, "room_seq", bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}}, unique},
		// A retried send Redis forgot is found by its cid (after a restore).
		{m.msgs, "room_cid", bson.D{{Key: "room", Value: 1}, {Key: "cid", Value: 1}}, options.Index()},
		{m.reads, "room_user", bson.D{{Key: "room", Value: 1}, {Key: "user", Value: 1}}, unique},
		{m.gaps, "room_from", bson.D{{Key: "room", Value: 1}, {Key: "from", Value: 1}}, unique},
	} {
		have, err := indexNames(ctx, ix.coll)
		if err != nil {
			return nil, err
		}
		// Only missing ones: FerretDB 1.24 fails on re-creating an existing
		// index, which MongoDB treats as a no-op.
		if !have[ix.name] {
			model := mongo.IndexModel{Keys: ix.keys, Options: ix.opts.SetName(ix.name)}
			if _, err := ix.coll.Indexes().CreateOne(ctx, model); err != nil {
				return nil, fmt.Errorf("store: create index %s: %w", ix.name, err)
			}
		}
	}
	return m, nil
}

func indexNames(ctx context.Context, coll *mongo.Collection) (map[string]bool, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: list indexes: %w", err)
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("store: list indexes: %w", err)
	}
	names := map[string]bool{}
	for _, s := range specs {
		names[s.Name] = true
	}
	return names, nil
}

// Close is a no-op: the client belongs to the caller.
func (s *Mongo) Close() error { return nil }

// Ping checks the server answers.
func (s *Mongo) Ping(ctx context.Context) error { return s.db.Client().Ping(ctx, nil) }

// Insert stores messages with one unordered InsertMany. A duplicate key is
// a replay when the stored message is the same (from, cid); otherwise the
// message is refused, kept in the conflicts collection and reported.
func (s *Mongo) Insert(ctx context.Context, entries []chatlog.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	docs := make([]any, len(entries))
	for i := range entries {
		docs[i] = entries[i].Message
	}
	_, err := s.msgs.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return fmt.Errorf("store: insert %d messages: %w", len(entries), err)
	}
	var conflicts []Conflict
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return fmt.Errorf("store: insert %d messages: %w", len(entries), err)
		}
		m := entries[we.Index].Message
		var stored chatlog.Message
		err := s.msgs.FindOne(ctx, bson.D{{Key: "room", Value: m.Room}, {Key: "seq", Value: m.Seq}}).Decode(&stored)
		if err != nil {
			return fmt.Errorf("store: read message %d of room %d back: %w", m.Seq, m.Room, err)
		}
		if stored.From == m.From && stored.CID == m.CID {
			continue // a replayed batch
		}
		c := Conflict{Room: m.Room, Seq: m.Seq, Stored: sender(stored.From, stored.CID), Refused: sender(m.From, m.CID)}
		if _, err := s.conflicts.InsertOne(ctx, bson.D{{Key: "room", Value: m.Room}, {Key: "seq", Value: m.Seq},
			{Key: "msg", Value: string(entries[we.Index].Raw)}, {Key: "at", Value: time.Now()}}); err != nil {
			return fmt.Errorf("store: keep refused message %d of room %d: %w", m.Seq, m.Room, err)
		}
		conflicts = append(conflicts, c)
	}
	if len(conflicts) > 0 {
		return &ConflictError{Conflicts: conflicts}
	}
	return nil
}

// Edit replaces the body of edited messages and sets edited_at, leaving
// deleted ones as they are.
func (s *Mongo) Edit(ctx context.Context, edits []chatlog.Entry) error {
	if len(edits) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(edits))
	for i, e := range edits {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "room", Value: e.Room}, {Key: "seq", Value: e.Seq}, {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}}).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: e.Message.Body}, {Key: "edited_at", Value: e.Message.EditedAt}}}})
	}
	// Ordered: two edits of one message in a batch apply in stream order.
	if _, err := s.msgs.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
		return fmt.Errorf("store: edit %d messages: %w", len(edits), err)
	}
	return nil
}

func (s *Mongo) Tombstone(ctx context.Context, room int64, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.msgs.UpdateMany(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$in", Value: seqs}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}, {Key: "body", Value: ""}}},
			{Key: "$unset", Value: bson.D{{Key: "attachment", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("store: tombstone %d messages of room %d: %w", len(seqs), room, err)
	}
	return nil
}

func (s *Mongo) SaveReads(ctx context.Context, marks []chatlog.ReadMark) error {
	if len(marks) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(marks))
	for i, r := range marks {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "room", Value: r.Room}, {Key: "user", Value: r.User}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: r.Seq}}}}).
			SetUpsert(true)
	}
	if _, err := s.reads.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("store: save %d read positions: %w", len(marks), err)
	}
	return nil
}

func (s *Mongo) ReadPositions(ctx context.Context, room int64) (map[int64]int64, error) {
	cur, err := s.reads.Find(ctx, bson.D{{Key: "room", Value: room}})
	if err != nil {
		return nil, fmt.Errorf("store: read positions of room %d: %w", room, err)
	}
	var rows []struct {
		User int64 `bson:"user"`
		Seq  int64 `bson:"seq"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("store: read positions of room %d: %w", room, err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.User] = r.Seq
	}
	return out, nil
}

func (s *Mongo) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	return s.find(ctx, bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: after}}}}, 1, limit)
}

func (s *Mongo) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	if before <= 0 {
		before = 1 << 62
	}
	return s.find(ctx, bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: before}}}}, -1, limit)
}

// Search finds messages of room whose body contains q, case-insensitively,
// newest first. q is quoted, so it is always text, never a pattern or an
// operator.
func (s *Mongo) Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error) {
	filter := bson.D{
		{Key: "room", Value: room},
		{Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}},
		{Key: "body", Value: bson.Regex{Pattern: regexp.QuoteMeta(q), Options: "i"}},
	}
	return s.find(ctx, filter, -1, limit)
}

func (s *Mongo) find(ctx context.Context, filter bson.D, order, limit int) ([][]byte, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: order}}).SetLimit(int64(limit))
	cur, err := s.msgs.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("store: find: %w", err)
	}
	var msgs []chatlog.Message
	if err := cur.All(ctx, &msgs); err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	out := make([][]byte, len(msgs))
	for i := range msgs {
		msgs[i].Type = "msg"
		if out[i], err = json.Marshal(&msgs[i]); err != nil {
			return nil, fmt.Errorf("store: encode: %w", err)
		}
	}
	return out, nil
}

func (s *Mongo) MaxSeq(ctx context.Context, room int64) (int64, error) {
	var m chatlog.Message
	err := s.msgs.FindOne(ctx, bson.D{{Key: "room", Value: room}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: highest seq of room %d: %w", room, err)
	}
	return m.Seq, nil
}

func (s *Mongo) Count(ctx context.Context, room int64) (int64, error) {
	n, err := s.msgs.CountDocuments(ctx, bson.D{{Key: "room", Value: room}})
	if err != nil {
		return 0, fmt.Errorf("store: count room %d: %w", room, err)
	}
	return n, nil
}

// ReserveSeqs raises the mark with a compare-and-set loop: a conditional
// update and an insert on the unique _id are atomic on MongoDB, so nodes
// reserving at once never lower it. FerretDB (the tests' MongoDB-wire
// server) does not apply a conditional update atomically, so reservations
// of one process are also serialized here; they are rare (one per block).
func (s *Mongo) ReserveSeqs(ctx context.Context, room, atLeast int64) (int64, error) {
	s.reserving.Lock()
	defer s.reserving.Unlock()
	for {
		var doc struct {
			Hi int64 `bson:"hi"`
		}
		err := s.blocks.FindOne(ctx, bson.D{{Key: "_id", Value: room}}).Decode(&doc)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			if atLeast == 0 {
				return 0, nil
			}
			_, err = s.blocks.InsertOne(ctx, bson.D{{Key: "_id", Value: room}, {Key: "hi", Value: atLeast}})
			if err == nil {
				return atLeast, nil
			}
			if !mongo.IsDuplicateKeyError(err) {
				return 0, fmt.Errorf("store: reserve seqs of room %d up to %d: %w", room, atLeast, err)
			}
		case err != nil:
			return 0, fmt.Errorf("store: reserved seqs of room %d: %w", room, err)
		case doc.Hi >= atLeast:
			return doc.Hi, nil
		default:
			res, err := s.blocks.UpdateOne(ctx, bson.D{{Key: "_id", Value: room}, {Key: "hi", Value: doc.Hi}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "hi", Value: atLeast}}}})
			if err != nil {
				return 0, fmt.Errorf("store: reserve seqs of room %d up to %d: %w", room, atLeast, err)
			}
			if res.ModifiedCount == 1 {
				return atLeast, nil
			}
		}
		// Another node moved the mark meanwhile: read it again.
	}
}

func (s *Mongo) AddGap(ctx context.Context, g chatlog.Gap) error {
	_, err := s.gaps.UpdateOne(ctx, bson.D{{Key: "room", Value: g.Room}, {Key: "from", Value: g.From}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "to", Value: g.To}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("store: record gap %d–%d of room %d: %w", g.From, g.To, g.Room, err)
	}
	return nil
}

func (s *Mongo) Gaps(ctx context.Context, room, from, to int64) ([]chatlog.Gap, error) {
	cur, err := s.gaps.Find(ctx, bson.D{{Key: "room", Value: room},
		{Key: "from", Value: bson.D{{Key: "$lte", Value: to}}}, {Key: "to", Value: bson.D{{Key: "$gte", Value: from}}}},
		options.Find().SetSort(bson.D{{Key: "from", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: gaps of room %d: %w", room, err)
	}
	var gaps []chatlog.Gap
	if err := cur.All(ctx, &gaps); err != nil {
		return nil, fmt.Errorf("store: gaps of room %d: %w", room, err)
	}
	return gaps, nil
}

func (s *Mongo) FindCID(ctx context.Context, room, from int64, cid string) (chatlog.Accepted, bool, error) {
	var m chatlog.Message
	err := s.msgs.FindOne(ctx, bson.D{{Key: "room", Value: room}, {Key: "cid", Value: cid}, {Key: "from", Value: from}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chatlog.Accepted{}, false, nil
	}
	if err != nil {
		return chatlog.Accepted{}, false, fmt.Errorf("store: find cid in room %d: %w", room, err)
	}
	return chatlog.Accepted{Seq: m.Seq, TS: m.TS}, true, nil
}
