package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// maxMentions caps the names looked up for one message: a body naming
// more people than a room list shows is a roll call, not mentions.
const maxMentions = 50

// usernameByte reports whether b can be part of a username
// (accounts: a-z, 0-9, '_', '.', '-'; @mentions match case-insensitively).
func usernameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-'
}

// mentionedNames returns the distinct lower-cased usernames written as
// @name in body. The @ must start the body or follow a byte that cannot
// be in a username, so an e-mail address mentions nobody. A name's
// trailing '.' or '-' is also tried without them ("@minsu." ends a
// sentence).
func mentionedNames(body string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if len(n) >= 3 && len(n) <= 32 && !seen[n] && len(out) < maxMentions {
			seen[n] = true
			out = append(out, n)
		}
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '@' || (i > 0 && usernameByte(body[i-1])) {
			continue
		}
		j := i + 1
		for j < len(body) && usernameByte(body[j]) {
			j++
		}
		name := strings.ToLower(body[i+1 : j])
		add(name)
		if trimmed := strings.TrimRight(name, ".-"); trimmed != name {
			add(trimmed)
		}
		i = j - 1
	}
	return out
}

// mentions resolves the @names in body to the ids of room members with
// those usernames (nil when there are none). Only bodies with an '@' cost
// a directory lookup.
func (h *Hub) mentions(ctx context.Context, room int64, body string) ([]int64, error) {
	if !strings.Contains(body, "@") {
		return nil, nil
	}
	names := mentionedNames(body)
	if len(names) == 0 {
		return nil, nil
	}
	return h.dir.MemberIDsByUsername(ctx, room, names)
}

// withMentions adds the mentioned members to a draft. A failed lookup
// sends the message without them: chat does not wait on SQL for a
// highlight.
func (h *Hub) withMentions(ctx context.Context, room int64, body string, add func([]int64)) {
	ids, err := h.mentions(ctx, room, body)
	if err != nil {
		h.log.Warn("mentions not resolved; sending without them", "room", room, "err", err)
		return
	}
	if len(ids) > 0 {
		add(ids)
	}
}

// mentionWindow caps the unread messages of a room scanned for mentions
// of the reader: a count past it is more than any badge shows.
const mentionWindow = 1000

var mentionsField = []byte(`"mentions":[`)

// unreadMentions counts the messages of room after read (up to top, the
// newest mentionWindow of them) that mention user, are not deleted and
// are not user's own.
// It reads them as sync would, from the broker and then the store, so the
// count follows reads, edits and deletes on either engine with no index
// of its own to keep in step.
func (h *Hub) unreadMentions(ctx context.Context, room, user, read, top int64) (int64, error) {
	msgs, err := h.After(ctx, room, max(read, top-mentionWindow), mentionWindow)
	if err != nil {
		return 0, fmt.Errorf("hub: unread mentions in room %d: %w", room, err)
	}
	var n int64
	for _, m := range msgs {
		// Most messages mention nobody; only those that do are decoded.
		if !bytes.Contains(m, mentionsField) {
			continue
		}
		var msg struct {
			From     int64   `json:"from"`
			Mentions []int64 `json:"mentions"`
			Deleted  bool    `json:"deleted"`
		}
		if json.Unmarshal(m, &msg) == nil && !msg.Deleted && msg.From != user && slices.Contains(msg.Mentions, user) {
			n++
		}
	}
	return n, nil
}
