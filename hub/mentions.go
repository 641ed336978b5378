package hub

import (
	"context"
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
