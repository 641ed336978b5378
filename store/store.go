// Package store keeps every chat message forever in MongoDB (or the
// embedded FerretDB): the batcher writes what the hub accepted into Redis,
// and history, search and sync read it back.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Message is one stored chat message. Its JSON is the protocol's msg
// event, so history and live delivery look the same to clients.
type Message struct {
	Type    string `bson:"-" json:"type"`
	Room    int64  `bson:"room" json:"room"`
	Seq     int64  `bson:"seq" json:"seq"`
	From    int64  `bson:"from" json:"from"`
	Name    string `bson:"name" json:"name"`
	Body    string `bson:"body" json:"body"`
	CID     string `bson:"cid" json:"cid"`
	TS      int64  `bson:"ts" json:"ts"`
	ReplyTo int64  `bson:"reply_to,omitempty" json:"reply_to,omitempty"`
	Kind    string `bson:"kind" json:"kind"`
	Deleted bool   `bson:"deleted,omitempty" json:"deleted,omitempty"`
	// Fee holds a fee event's structured fields (kind "fee").
	Fee map[string]any `bson:"fee,omitempty" json:"fee,omitempty"`
}

// Store is the messages collection.
type Store struct {
	coll *mongo.Collection
}

// Open returns the store on db, creating its indexes if they are missing.
func Open(ctx context.Context, db *mongo.Database) (*Store, error) {
	coll := db.Collection("messages")
	// One index serves every query (history pages, sync, max seq, search
	// within a room); each further index would cost every insert.
	want := map[string]mongo.IndexModel{
		// Unique: a replayed batch inserts nothing twice.
		"room_seq": {Keys: bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}}, Options: options.Index().SetUnique(true).SetName("room_seq")},
	}
	have, err := indexNames(ctx, coll)
	if err != nil {
		return nil, err
	}
	// Only missing ones: FerretDB 1.24 fails on re-creating an existing
	// index, which MongoDB treats as a no-op.
	for name, m := range want {
		if !have[name] {
			if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
				return nil, fmt.Errorf("store: create index %s: %w", name, err)
			}
		}
	}
	return &Store{coll: coll}, nil
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

// Insert stores messages with one unordered InsertMany. Messages already
// stored (a batch replayed after a crash) are not an error.
func (s *Store) Insert(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	docs := make([]any, len(msgs))
	for i := range msgs {
		docs[i] = &msgs[i]
	}
	_, err := s.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return fmt.Errorf("store: insert %d messages: %w", len(msgs), err)
}

// onlyDuplicates reports whether every write error is a duplicate key.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// Tombstone marks deleted messages: body cleared, entry kept so seqs stay
// gap-free.
func (s *Store) Tombstone(ctx context.Context, room int64, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.coll.UpdateMany(ctx,
		bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$in", Value: seqs}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}, {Key: "body", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("store: tombstone %d messages of room %d: %w", len(seqs), room, err)
	}
	return nil
}

// After returns up to limit messages of room with seq > after, oldest
// first, each encoded as a msg event.
func (s *Store) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	return s.find(ctx, bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: after}}}}, 1, limit)
}

// Before returns up to limit messages of room with seq < before, newest
// first.
func (s *Store) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	return s.find(ctx, bson.D{{Key: "room", Value: room}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: before}}}}, -1, limit)
}

// Search finds messages of room whose body contains q, case-insensitively,
// newest first. q is quoted, so it is always text, never a pattern or an
// operator.
func (s *Store) Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error) {
	filter := bson.D{
		{Key: "room", Value: room},
		{Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}},
		{Key: "body", Value: bson.Regex{Pattern: regexp.QuoteMeta(q), Options: "i"}},
	}
	return s.find(ctx, filter, -1, limit)
}

func (s *Store) find(ctx context.Context, filter bson.D, order, limit int) ([][]byte, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: order}}).SetLimit(int64(limit))
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("store: find: %w", err)
	}
	var msgs []Message
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

// MaxSeq is the highest stored seq of room, 0 when none.
func (s *Store) MaxSeq(ctx context.Context, room int64) (int64, error) {
	var m Message
	err := s.coll.FindOne(ctx, bson.D{{Key: "room", Value: room}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: highest seq of room %d: %w", room, err)
	}
	return m.Seq, nil
}

// Count is how many messages room has stored.
func (s *Store) Count(ctx context.Context, room int64) (int64, error) {
	n, err := s.coll.CountDocuments(ctx, bson.D{{Key: "room", Value: room}})
	if err != nil {
		return 0, fmt.Errorf("store: count room %d: %w", room, err)
	}
	return n, nil
}
