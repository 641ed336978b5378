package attachments

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestBlobs runs one contract against both storages: the data directory
// and GridFS on the MongoDB (or FerretDB process) MOIM_TEST_MONGO_URI
// names.
func TestBlobs(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		d, err := NewDisk(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		testBlobs(t, d)
	})
	t.Run("gridfs", func(t *testing.T) {
		uri := os.Getenv("MOIM_TEST_MONGO_URI")
		if uri == "" {
			t.Fatal("MOIM_TEST_MONGO_URI is not set: GridFS needs a real MongoDB or FerretDB process (make test starts one)")
		}
		client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		db := client.Database("moim_blobs_" + randomKey(t)[:8])
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = db.Drop(ctx)
			_ = client.Disconnect(ctx)
		})
		testBlobs(t, NewGridFS(db))
	})
}

func randomKey(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func testBlobs(t *testing.T, b Blobs) {
	ctx := context.Background()
	// 600 KB spans several GridFS chunks (255 KB each).
	big := make([]byte, 600<<10)
	_, _ = rand.Read(big)
	small := []byte("receipt")
	k1, k2 := randomKey(t), randomKey(t)
	for k, data := range map[string][]byte{k1: big, k2: small} {
		if err := b.Put(ctx, k, data); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	read := func(k string) ([]byte, error) {
		r, err := b.Open(ctx, k)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	if got, err := read(k1); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back the big blob: %d bytes, %v; want %d bytes as written", len(got), err, len(big))
	}
	if got, err := read(k2); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("read back the small blob: %q, %v", got, err)
	}
	if _, err := read(randomKey(t)); !errors.Is(err, ErrNoBlob) {
		t.Fatalf("unknown key: %v, want ErrNoBlob", err)
	}
	if err := b.Delete(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if _, err := read(k1); !errors.Is(err, ErrNoBlob) {
		t.Fatalf("deleted key: %v, want ErrNoBlob", err)
	}
	if err := b.Delete(ctx, k1); err != nil {
		t.Fatalf("deleting twice: %v, want nil", err)
	}
	if got, err := read(k2); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("the other blob after a delete: %q, %v", got, err)
	}
}

func TestSafeName(t *testing.T) {
	long := string(bytes.Repeat([]byte("가"), 200)) + ".jpg"
	for in, want := range map[string]string{
		"../../etc/passwd":          "passwd",
		`C:\Users\me\영수증 3월.JPG`:    "영수증 3월.JPG",
		"a\x00b\u202ecod.exe":       "abcod.exe",
		"":                          "file",
		"...":                       "file",
		`"quoted" <name>.png`:       "quoted name.png",
		"receipt\r\nX-Evil: 1.webp": "receiptX-Evil 1.webp",
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := SafeName(long); len([]rune(got)) != maxName || got[len(got)-4:] != ".jpg" {
		t.Errorf("a long name: %d characters ending %q, want %d ending .jpg", len([]rune(got)), got[len(got)-4:], maxName)
	}
}
