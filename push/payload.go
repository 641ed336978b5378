package push

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"moim/chatlog"
)

// Payload is what a push carries, encrypted, to the service worker
// (docs/PROTOCOL.md, Push notifications).
type Payload struct {
	// Type is "message" or "invitation".
	Type     string `json:"type"`
	Room     int64  `json:"room"`
	RoomName string `json:"room_name,omitempty"`
	// Seq, From, Name, Body and Kind are the newest message the push
	// stands for (or the one that named the recipient).
	Seq  int64  `json:"seq,omitempty"`
	From int64  `json:"from,omitempty"`
	Name string `json:"name,omitempty"`
	Body string `json:"body,omitempty"`
	Kind string `json:"kind,omitempty"`
	// Fee is a fee message's event (reminder, dues, autopay_failed…).
	Fee string `json:"fee,omitempty"`
	// Count is how many messages arrived in the window this push covers.
	Count int `json:"count,omitempty"`
	// Mention is set when the message names the recipient: an @mention,
	// a reminder of their unpaid dues, their own auto-pay's result.
	Mention bool `json:"mention,omitempty"`
	// Invitation is the invitation's id (type "invitation"); Name is then
	// the inviter.
	Invitation int64 `json:"invitation,omitempty"`
	// URL is the page the notification opens.
	URL string `json:"url"`
}

// maxBody keeps a payload well inside the 4 KB a push service accepts.
const maxBody = 300

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func roomURL(room int64) string { return "/#/room/" + strconv.FormatInt(room, 10) }

// messagePayload words a message for a push.
func messagePayload(m *chatlog.Message, roomName string, count int, mention bool) Payload {
	p := Payload{Type: "message", Room: m.Room, RoomName: roomName, Seq: m.Seq, From: m.From, Name: m.Name,
		Body: clip(m.Body, maxBody), Kind: m.Kind, Count: count, Mention: mention, URL: roomURL(m.Room)}
	if ev, ok := m.Fee["event"].(string); ok {
		p.Fee = ev
	}
	return p
}

// targets are the members a message is about: its @mentions, and for a
// fee event the member it concerns ("user") or the unpaid ("unpaid").
// They are pushed even where they muted the room.
func targets(m *chatlog.Message) []int64 {
	out := append([]int64(nil), m.Mentions...)
	if m.Fee == nil {
		return out
	}
	if u, ok := m.Fee["user"].(float64); ok {
		out = append(out, int64(u))
	}
	if list, ok := m.Fee["unpaid"].([]any); ok {
		for _, v := range list {
			if u, ok := v.(float64); ok {
				out = append(out, int64(u))
			}
		}
	}
	return out
}

// invitationEvent is the part of the hub's invitation event a push needs.
type invitationEvent struct {
	Type       string `json:"type"`
	Invitation struct {
		ID          int64  `json:"id"`
		RoomID      int64  `json:"room_id"`
		RoomName    string `json:"room_name"`
		InviterName string `json:"inviter_name"`
	} `json:"invitation"`
}

// invitationPayload reads a live "invitation" event; ok is false for
// any other event.
func invitationPayload(event []byte) (Payload, bool) {
	var ev invitationEvent
	if json.Unmarshal(event, &ev) != nil || ev.Type != "invitation" {
		return Payload{}, false
	}
	inv := ev.Invitation
	return Payload{Type: "invitation", Room: inv.RoomID, RoomName: inv.RoomName, Name: inv.InviterName,
		Invitation: inv.ID, URL: "/#/"}, true
}
