package hub

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"moim/api"
)

// inbound is any client frame of protocol v1 (docs/PROTOCOL.md).
type inbound struct {
	Type    string           `json:"type"`
	Room    int64            `json:"room"`
	CID     string           `json:"cid"`
	Body    string           `json:"body"`
	ReplyTo int64            `json:"reply_to"`
	Seq     int64            `json:"seq"`
	Rooms   map[string]int64 `json:"rooms"`
	// Attachment is the id of an upload to attach to a message.
	Attachment string `json:"attachment"`
	// Resend marks a send of a cid sent before whose answer never came.
	Resend bool `json:"resend"`
}

// Limits of a chat message.
const (
	maxBody = 4000 // characters
	maxCID  = 64
)

func validCID(cid string) bool {
	if cid == "" || len(cid) > maxCID {
		return false
	}
	for i := 0; i < len(cid); i++ {
		// Printable ASCII without ':' keeps the cids hash field (user:cid) unambiguous.
		if c := cid[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

// validBody is 1 to maxBody characters without C0 controls other than
// newline and tab (NUL and escapes corrupt clients' display and logs).
func validBody(body string) bool {
	n := utf8.RuneCountInString(body)
	return n >= 1 && n <= maxBody && strings.IndexFunc(body, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) < 0
}

// validContent is a message's body, or an empty body beside an
// attachment (a photo needs no caption).
func validContent(body, attachment string) bool {
	return validBody(body) || (body == "" && attachment != "")
}

// checkSend is the one check of a message to send, for the send frame and
// POST /api/rooms/{id}/messages alike: a field breaking its rule is code
// validation on both (bad_request is for a request of the wrong shape).
func checkSend(cid, body, attachment string, replyTo int64) *api.Error {
	if !validCID(cid) {
		return api.Validation("cid must be 1 to 64 printable ASCII characters without ':'")
	}
	if !validContent(body, attachment) {
		return api.Validation("body must be 1 to 4000 characters without control characters other than newline and tab (or empty beside an attachment)")
	}
	if replyTo < 0 {
		return api.Validation("reply_to must be a seq")
	}
	return nil
}

// checkBody is the rule for a message body, sent or edited.
func checkBody(body string) *api.Error {
	if !validBody(body) {
		return api.Validation("body must be 1 to 4000 characters without control characters other than newline and tab")
	}
	return nil
}

// Server → client events other than msg. Each is encoded once per event.
type (
	readyEvent struct {
		Type string `json:"type"`
		User int64  `json:"user"`
		Node string `json:"node"`
	}
	ackEvent struct {
		Type string `json:"type"`
		CID  string `json:"cid"`
		Room int64  `json:"room"`
		Seq  int64  `json:"seq"`
		TS   int64  `json:"ts"`
	}
	syncedEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
		Seq  int64  `json:"seq"`
	}
	readEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
		User int64  `json:"user"`
		Seq  int64  `json:"seq"`
	}
	typingEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
		User int64  `json:"user"`
	}
	presenceEvent struct {
		Type   string `json:"type"`
		User   int64  `json:"user"`
		Online bool   `json:"online"`
	}
	editedEvent struct {
		Type     string `json:"type"`
		Room     int64  `json:"room"`
		Seq      int64  `json:"seq"`
		Body     string `json:"body"`
		EditedAt int64  `json:"edited_at"`
	}
	// removedEvent tells a socket its user left or was removed from a room.
	removedEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
	}
	deletedEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
		Seq  int64  `json:"seq"`
		By   int64  `json:"by"`
	}
	// gapEvent tells a client that seqs From..To of a room may name
	// messages lost before they were stored: those that never arrive are
	// not coming (docs/PROTOCOL.md).
	gapEvent struct {
		Type string `json:"type"`
		Room int64  `json:"room"`
		From int64  `json:"from"`
		To   int64  `json:"to"`
	}
	errorEvent struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		CID     string `json:"cid,omitempty"`
		Room    int64  `json:"room,omitempty"`
		// RetryAfterMS is how long a rate_limited client should wait.
		RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	}
)

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the event types above always marshal
	}
	return b
}

// membershipEvent travels on the membership channel between nodes, which
// every node hears: a membership change, or, when Event is set, an event
// for Users' own connections, or, when Recheck is set, word that Users'
// tokens changed (Room and Joined unused in both).
type membershipEvent struct {
	Room    int64           `json:"room"`
	Users   []int64         `json:"users"`
	Joined  bool            `json:"joined"`
	Event   json.RawMessage `json:"event,omitempty"`
	Recheck bool            `json:"recheck,omitempty"`
}
