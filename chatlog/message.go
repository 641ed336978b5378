// Package chatlog is the contract of Moim's chat log shared by the hub
// (which accepts and delivers messages) and the store (which keeps them):
// a message's shape and JSON, its draft before a seq exists, tombstones,
// the persistence stream's fields and the Redis key names.
package chatlog

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Kinds of message.
const (
	KindText   = "text"
	KindSystem = "system"
	KindFee    = "fee"
)

// Message is one chat message as stored and as sent to clients: its JSON
// is the protocol's msg event, so history and live delivery look alike.
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
	// Mentions are the members the body names as @username, resolved
	// when it was sent.
	Mentions []int64 `bson:"mentions,omitempty" json:"mentions,omitempty"`
	// EditedAt is when the author last edited the body, unix ms; 0 when
	// never.
	EditedAt int64 `bson:"edited_at,omitempty" json:"edited_at,omitempty"`
	// Fee holds a fee event's structured fields (kind "fee").
	Fee map[string]any `bson:"fee,omitempty" json:"fee,omitempty"`
	// System holds a system message's structured fields (kind "system"),
	// so clients can render it in the reader's language.
	System map[string]any `bson:"system,omitempty" json:"system,omitempty"`
	// Attachment is the file or image the sender attached, as uploaded
	// (POST /api/rooms/{id}/attachments); nil when none.
	Attachment *Attachment `bson:"attachment,omitempty" json:"attachment,omitempty"`
}

// Kinds of attachment.
const (
	AttachImage = "image" // re-encoded without metadata, with a thumbnail
	AttachFile  = "file"  // any other file, served for download only
)

// Attachment is an uploaded file's metadata as a message carries it: the
// bytes stay in attachment storage, fetched by ID by room members.
type Attachment struct {
	ID   string `bson:"id" json:"id"`
	Name string `bson:"name" json:"name"`
	// Type is the media type sniffed from the bytes.
	Type string `bson:"type" json:"type"`
	Size int64  `bson:"size" json:"size"`
	Kind string `bson:"kind" json:"kind"`
	// Width and Height are an image's pixels (0 for a file).
	Width  int `bson:"width,omitempty" json:"width,omitempty"`
	Height int `bson:"height,omitempty" json:"height,omitempty"`
}

// Draft is a message before it has a seq: its JSON is split around the
// seq so the log can splice one in without encoding the message again.
type Draft struct {
	Room int64
	From int64  // 0 for server-side producers
	CID  string // client id; server-side producers use their idempotency key
	Body string // kept beside the JSON for stores that index it
	Head []byte // JSON up to and including `"seq":`
	Tail []byte // JSON after the seq
	TS   int64  // accept time, unix ms
	// Resend marks a send whose cid may have been accepted before (its
	// answer never came): on the Redis path a cid Redis no longer
	// remembers is looked up in the store before it is taken as new.
	Resend bool
}

// NewDraft encodes a message around its seq, once, for every recipient.
func NewDraft(room, from int64, name, body, cid, kind string, replyTo, ts int64) *Draft {
	head := make([]byte, 0, 48)
	head = append(head, `{"type":"msg","room":`...)
	head = strconv.AppendInt(head, room, 10)
	head = append(head, `,"seq":`...)
	tail := make([]byte, 0, 96+len(body)+len(name))
	tail = append(tail, `,"from":`...)
	tail = strconv.AppendInt(tail, from, 10)
	tail = append(tail, `,"name":`...)
	tail = appendJSONString(tail, name)
	tail = append(tail, `,"body":`...)
	tail = appendJSONString(tail, body)
	tail = append(tail, `,"cid":`...)
	tail = appendJSONString(tail, cid)
	tail = append(tail, `,"ts":`...)
	tail = strconv.AppendInt(tail, ts, 10)
	if replyTo > 0 {
		tail = append(tail, `,"reply_to":`...)
		tail = strconv.AppendInt(tail, replyTo, 10)
	}
	tail = append(tail, `,"kind":`...)
	tail = appendJSONString(tail, kind)
	tail = append(tail, '}')
	return &Draft{Room: room, From: from, CID: cid, Body: body, Head: head, Tail: tail, TS: ts}
}

// WithFee adds a fee event's structured fields to the draft's JSON.
func (d *Draft) WithFee(fee json.RawMessage) { d.with("fee", fee) }

// WithMentions adds the ids of members mentioned by @username.
func (d *Draft) WithMentions(ids []int64) {
	raw, _ := json.Marshal(ids) // a slice of ints always marshals
	d.with("mentions", raw)
}

// WithAttachment adds an uploaded attachment's metadata.
func (d *Draft) WithAttachment(a *Attachment) {
	raw, _ := json.Marshal(a) // strings and ints always marshal
	d.with("attachment", raw)
}

// WithSystem adds a system message's structured fields to the draft's JSON.
func (d *Draft) WithSystem(system json.RawMessage) { d.with("system", system) }

// with appends a field holding raw JSON before the closing brace.
func (d *Draft) with(field string, raw json.RawMessage) {
	d.Tail = append(d.Tail[:len(d.Tail)-1], `,"`...)
	d.Tail = append(append(d.Tail, field...), `":`...)
	d.Tail = append(append(d.Tail, raw...), '}')
}

// Encode is the message's JSON with seq spliced in.
func (d *Draft) Encode(seq int64) []byte {
	b := make([]byte, 0, len(d.Head)+20+len(d.Tail))
	b = append(b, d.Head...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, d.Tail...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Accepted is what the log decided for a draft.
type Accepted struct {
	Seq int64
	TS  int64
	Dup bool // the same (user, cid) was accepted before; Seq is the original
}

// Tombstone is a deleted message as clients see it: the entry with its
// seq, sender and time, the body cleared and "deleted":true.
func Tombstone(msg []byte) []byte {
	var m map[string]any
	if json.Unmarshal(msg, &m) != nil {
		return msg
	}
	m["body"] = ""
	m["deleted"] = true
	delete(m, "attachment") // a deleted message no longer offers its file
	b, err := json.Marshal(m)
	if err != nil {
		return msg
	}
	return b
}

// Edited is a message as clients see it after its author replaced the
// body at editedAt (unix ms): the same message, seq and time, with the new
// body and "edited_at".
func Edited(msg []byte, body string, editedAt int64) ([]byte, error) {
	var m Message
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, fmt.Errorf("chatlog: edit unreadable message %.80q: %w", msg, err)
	}
	m.Body, m.EditedAt = body, editedAt
	b, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("chatlog: encode edited message %d of room %d: %w", m.Seq, m.Room, err)
	}
	return b, nil
}

// Gap is a range of a room's seqs that may name messages lost before they
// were stored (Redis lost acknowledged data); seqs in it that do exist
// are served as usual, the others never will be.
type Gap struct {
	Room int64 `bson:"room" json:"-"`
	From int64 `bson:"from" json:"from"`
	To   int64 `bson:"to" json:"to"`
}

// Activity is what a room list shows of a room for one member: its newest
// seq, how far the member has read, its newest message (nil when none)
// and how many unread messages mention the member.
type Activity struct {
	Seq      int64
	Read     int64
	Last     json.RawMessage
	Mentions int64
}

// Batch is a group of log operations committed in one transaction: the
// single-node engine's group commit. Commit fills in the results.
type Batch struct {
	Drafts []*Draft
	// Accepted holds, for each draft, its seq: a new one, or the original
	// one of a retried (user, cid).
	Accepted []Accepted
	// Encoded holds, for each new draft, its JSON as committed (nil for a
	// retried one), so the message is encoded once for the log and every
	// recipient.
	Encoded [][]byte
	Deletes []Deletion
	Edits   []Edit
	Reads   []ReadMark
}

// Edit replaces message Seq of Room with Msg, its edited JSON (Edited),
// whose new body is Body, edited at At (unix ms); Done reports that the
// message existed and was not deleted.
type Edit struct {
	Room, Seq int64
	Msg       []byte
	Body      string
	At        int64
	Done      bool
}

// Deletion deletes message Seq of Room on behalf of By; Done reports that
// it was not deleted before.
type Deletion struct {
	Room, Seq, By int64
	Done          bool
}

// ReadMark raises User's read position in Room to Seq (never lowering it).
type ReadMark struct {
	Room, User, Seq int64
}
