package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"moim/store"
)

// mongoTarget is Moim's own message store (store.Mongo: its schema,
// indexes and queries) on a MongoDB-wire server.
type mongoTarget struct {
	client *mongo.Client
	db     *mongo.Database
	store  *store.Mongo
}

// openMongo connects to uri and opens the store in database name, which
// must not exist yet.
func openMongo(ctx context.Context, uri, name string) (*mongoTarget, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("mongo: %w", err)
	}
	t := &mongoTarget{client: client, db: client.Database(name)}
	n, err := t.db.ListCollectionNames(ctx, bson.D{})
	if err == nil && len(n) > 0 {
		err = fmt.Errorf("database %s already has collections %v; pick another -db", name, n)
	}
	if err == nil {
		t.store, err = store.OpenMongo(ctx, t.db)
	}
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("mongo: %w", err)
	}
	return t, nil
}

func (t *mongoTarget) close(drop bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer t.client.Disconnect(ctx)
	if drop {
		if err := t.db.Drop(ctx); err != nil {
			return fmt.Errorf("mongo: drop database %s: %w", t.db.Name(), err)
		}
	}
	return nil
}

// version is the server's MongoDB version, and FerretDB's own when it is
// FerretDB.
func (t *mongoTarget) version(ctx context.Context) string {
	var info struct {
		Version string `bson:"version"`
		Ferret  string `bson:"ferretdbVersion"`
	}
	if err := t.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "?"
	}
	if info.Ferret != "" {
		// Embedded, FerretDB cannot know its own version; the module can.
		if bi, ok := debug.ReadBuildInfo(); ok && info.Ferret == "unknown" {
			for _, m := range bi.Deps {
				if m.Path == "github.com/FerretDB/FerretDB" {
					info.Ferret = m.Version
				}
			}
		}
		return "FerretDB " + info.Ferret + " (reports MongoDB " + info.Version + ")"
	}
	return "MongoDB " + info.Version
}

// disk is the collection's storage and index size as collStats reports it
// (MongoDB: WiredTiger's compressed blocks on disk; FerretDB: its
// backend's table and index sizes).
func (t *mongoTarget) disk(ctx context.Context) (diskUse, error) {
	// MongoDB's sizes are those of the last checkpoint (every 60 s):
	// fsync takes one now. FerretDB has no fsync command and needs none.
	_ = t.client.Database("admin").RunCommand(ctx, bson.D{{Key: "fsync", Value: 1}}).Err()
	var st bson.M
	if err := t.db.RunCommand(ctx, bson.D{{Key: "collStats", Value: "messages"}}).Decode(&st); err != nil {
		return diskUse{}, fmt.Errorf("mongo: collStats: %w", err)
	}
	d := diskUse{Data: number(st["storageSize"]), Index: number(st["totalIndexSize"]), Source: "collStats storageSize + totalIndexSize"}
	// collStats' count is an estimate on FerretDB's PostgreSQL (reltuples);
	// counting is exact.
	var err error
	if d.Rows, err = t.db.Collection("messages").CountDocuments(ctx, bson.D{}); err != nil {
		return d, fmt.Errorf("mongo: count: %w", err)
	}
	return d, nil
}

// number reads a count MongoDB may send as int32, int64 or double.
func number(v any) int64 {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return -1
}

// ferret is an embedded FerretDB listening on loopback.
type ferret struct {
	uri  string
	stop func()
}

// startFerret runs FerretDB in this process with the sqlite handler on
// directory sqliteDir or the postgresql handler on pgURL, as the server
// embeds it (server/backends.go).
func startFerret(handler, sqliteDir, pgURL string) (*ferret, error) {
	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:  handler,
		// FerretDB logs protocol chatter even at warn; only errors matter.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})).With("component", "ferretdb"),
	}
	switch handler {
	case "sqlite":
		cfg.SQLiteURL = "file:" + sqliteDir + "/"
	case "postgresql":
		cfg.PostgreSQLURL = pgURL
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("ferretdb %s: %w", handler, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.Run(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "dbbench: ferretdb %s stopped: %v\n", handler, err)
		}
	}()
	return &ferret{uri: f.MongoDBURI(), stop: func() { cancel(); <-done }}, nil
}

// dirSize is the total size of the files in dir (SQLite's database, WAL
// and shared-memory files).
func dirSize(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n, nil
}
