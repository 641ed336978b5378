package chatlog

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Fields of a persistence stream entry. send.lua, edit.lua, delete.lua and
// mark_read.lua write them; DecodeEntry is their one reader.
const (
	FieldMessage = "m"   // the message's JSON
	FieldRoom    = "r"   // room id
	FieldSeq     = "s"   // seq (of the deleted message, or the read position)
	FieldDelete  = "del" // id of the user who deleted the message
	FieldReader  = "rd"  // id of the user whose read position this is
	FieldEdit    = "ed"  // an edited message's JSON, replacing the stored one
)

// Entry is one decoded persistence stream entry: a message, an edit, a
// deletion or a read position.
type Entry struct {
	Message *Message // set for a message and an edit
	Raw     []byte   // the message's JSON as the hub wrote it
	Room    int64
	Seq     int64
	Edited  bool  // Message replaces the stored (Room, Seq)
	Deleted bool  // a deletion of (Room, Seq)
	Reader  int64 // a read position: Reader has read Room up to Seq
}

// DecodeEntry reads a persistence stream entry's fields.
func DecodeEntry(values map[string]any) (Entry, error) {
	if raw, ok := values[FieldMessage].(string); ok {
		var m Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Room <= 0 || m.Seq <= 0 {
			return Entry{}, fmt.Errorf("chatlog: unreadable message entry %.80q", raw)
		}
		return Entry{Message: &m, Raw: []byte(raw), Room: m.Room, Seq: m.Seq}, nil
	}
	if raw, ok := values[FieldEdit].(string); ok {
		var m Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Room <= 0 || m.Seq <= 0 {
			return Entry{}, fmt.Errorf("chatlog: unreadable edit entry %.80q", raw)
		}
		return Entry{Message: &m, Raw: []byte(raw), Room: m.Room, Seq: m.Seq, Edited: true}, nil
	}
	room, err1 := strconv.ParseInt(fmt.Sprint(values[FieldRoom]), 10, 64)
	seq, err2 := strconv.ParseInt(fmt.Sprint(values[FieldSeq]), 10, 64)
	if err1 != nil || err2 != nil || room <= 0 || seq <= 0 {
		return Entry{}, fmt.Errorf("chatlog: entry without room and seq: %v", values)
	}
	e := Entry{Room: room, Seq: seq}
	if _, ok := values[FieldDelete]; ok {
		e.Deleted = true
		return e, nil
	}
	if r, ok := values[FieldReader]; ok {
		if e.Reader, err1 = strconv.ParseInt(fmt.Sprint(r), 10, 64); err1 == nil && e.Reader > 0 {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("chatlog: entry of unknown kind: %v", values)
}
