package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"

	"moim/internal/rawio"
)

// journal is what a single node's send waits for: the group commit's new
// messages appended to a file of their own with one write, which, in the
// OS's page cache once the call returns, survives the process being
// killed as a SQLite commit in WAL mode with synchronous=NORMAL does, for
// a few hundred bytes a message instead of a transaction's pages (the
// batcher's messages go the same way, SQLite.Journal). The messages move
// into SQLite's messages table a slice of rooms at a time (SQLite.Tidy);
// a journal is emptied once all of its messages are committed there (see
// SQLite.rotate), and what it still holds when the node starts is
// written to SQLite first.
//
// The file is a series of frames, one per append: the payload's length
// and CRC-32C (little endian, four bytes each), then the rows. A frame
// cut short by a crash, or anything after one, is not read back: those
// messages were never acknowledged.
type journal struct {
	f    *os.File
	size int64 // bytes of whole frames; the next append starts here
	sync bool  // fsync after each append (SyncFull)
	buf  []byte
}

// logRow is one message as a journal and the messages table hold it.
type logRow struct {
	room, seq, from, ts int64
	cid, body           string
	msg                 []byte
	file                int // which of the journals holds it (SQLite.jr); not written
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const frameHeader = 8

// openJournal opens (creating if needed) the journal at path and returns
// the rows of its whole frames.
func openJournal(path string, sync bool) (*journal, []logRow, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("store: read journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("store: open journal: %w", err)
	}
	var rows []logRow
	for len(data) >= frameHeader {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if uint64(n) > uint64(len(data)-frameHeader) {
			break
		}
		payload := data[frameHeader : frameHeader+int(n)]
		if crc32.Checksum(payload, castagnoli) != sum {
			break
		}
		frame, err := decodeRows(payload)
		if err != nil {
			break
		}
		rows = append(rows, frame...)
		data = data[frameHeader+int(n):]
	}
	return &journal{f: f, sync: sync}, rows, nil
}

// append writes rows as one frame after the last whole one. On failure
// nothing of it counts: the next append writes over what it left.
func (j *journal) append(rows []logRow) error {
	b := append(j.buf[:0], 0, 0, 0, 0, 0, 0, 0, 0) // the header, filled in below
	for _, r := range rows {
		b = binary.AppendVarint(b, r.room)
		b = binary.AppendVarint(b, r.seq)
		b = binary.AppendVarint(b, r.from)
		b = binary.AppendVarint(b, r.ts)
		b = appendBytes(b, r.cid)
		b = appendBytes(b, r.body)
		b = appendBytes(b, r.msg)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-frameHeader))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[frameHeader:], castagnoli))
	j.buf = b
	if _, err := rawio.WriteAt(j.f, b, j.size); err != nil {
		return fmt.Errorf("store: append %d messages to the journal: %w", len(rows), err)
	}
	if j.sync {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("store: sync the journal: %w", err)
		}
	}
	j.size += int64(len(b))
	return nil
}

// reset empties the journal once what it held is committed to SQLite.
func (j *journal) reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("store: empty the journal: %w", err)
	}
	j.size = 0
	return nil
}

func (j *journal) close() error { return j.f.Close() }

func appendBytes[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadFrame = errors.New("store: journal frame does not parse")

func decodeRows(p []byte) ([]logRow, error) {
	var rows []logRow
	for len(p) > 0 {
		var r logRow
		for _, v := range []*int64{&r.room, &r.seq, &r.from, &r.ts} {
			n, k := binary.Varint(p)
			if k <= 0 {
				return nil, errBadFrame
			}
			*v, p = n, p[k:]
		}
		var cid, body []byte
		for _, v := range []*[]byte{&cid, &body, &r.msg} {
			n, k := binary.Uvarint(p)
			if k <= 0 || n > uint64(len(p)-k) {
				return nil, errBadFrame
			}
			*v, p = p[k:k+int(n)], p[k+int(n):]
		}
		r.cid, r.body = string(cid), string(body)
		rows = append(rows, r)
	}
	return rows, nil
}
