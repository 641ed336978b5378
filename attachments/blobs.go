package attachments

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Blobs keeps attachments' bytes under keys the package chooses (random
// hex ids, never a client's name). Put never replaces: a key is written
// once, so what a member fetched stays what was uploaded.
type Blobs interface {
	Put(ctx context.Context, key string, data []byte) error
	// Open reads a blob; ErrNoBlob when there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// ErrNoBlob is a key that holds nothing.
var ErrNoBlob = errors.New("attachments: no such blob")

// Disk keeps blobs as files under a directory (the node's data
// directory): the single node's storage, and any node without MongoDB.
type Disk struct{ dir string }

// NewDisk keeps blobs under dir, creating it.
func NewDisk(dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("attachments: create %s: %w", dir, err)
	}
	return &Disk{dir: dir}, nil
}

// path spreads files over 256 subdirectories by the key's first two hex
// digits, so no directory grows past what file systems list quickly.
func (d *Disk) path(key string) string {
	return filepath.Join(d.dir, key[:2], key)
}

// Put writes to a temporary file and renames it into place, so a crash
// never leaves half a file under a key.
func (d *Disk) Put(_ context.Context, key string, data []byte) error {
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("attachments: create dir for %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("attachments: write %s: %w", key, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("attachments: write %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("attachments: sync %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("attachments: close %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("attachments: place %s: %w", key, err)
	}
	return nil
}

// Open reads a blob's file.
func (d *Disk) Open(_ context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBlob
	}
	if err != nil {
		return nil, fmt.Errorf("attachments: open %s: %w", key, err)
	}
	return f, nil
}

// Delete removes a blob's file; a missing one is already deleted.
func (d *Disk) Delete(_ context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("attachments: delete %s: %w", key, err)
	}
	return nil
}

// GridFS keeps blobs in MongoDB GridFS (bucket "attachments"): the
// production path, where every node reads what any node stored.
type GridFS struct{ bucket *mongo.GridFSBucket }

// NewGridFS keeps blobs in db's "attachments" bucket.
func NewGridFS(db *mongo.Database) *GridFS {
	return &GridFS{bucket: db.GridFSBucket(options.GridFSBucket().SetName("attachments"))}
}

// Put stores a blob with its key as the GridFS file id.
func (g *GridFS) Put(ctx context.Context, key string, data []byte) error {
	if err := g.bucket.UploadFromStreamWithID(ctx, key, key, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("attachments: gridfs put %s: %w", key, err)
	}
	return nil
}

// Open streams a blob's chunks.
func (g *GridFS) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	s, err := g.bucket.OpenDownloadStream(ctx, key)
	if errors.Is(err, mongo.ErrFileNotFound) {
		return nil, ErrNoBlob
	}
	if err != nil {
		return nil, fmt.Errorf("attachments: gridfs open %s: %w", key, err)
	}
	return s, nil
}

// Delete removes a blob's file and chunks; a missing one is already
// deleted.
func (g *GridFS) Delete(ctx context.Context, key string) error {
	if err := g.bucket.Delete(ctx, key); err != nil && !errors.Is(err, mongo.ErrFileNotFound) {
		return fmt.Errorf("attachments: gridfs delete %s: %w", key, err)
	}
	return nil
}
