package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Events of system messages: the "event" of a kind "system" message's
// "system" object (docs/PROTOCOL.md), which clients render in the
// reader's language; the body is the Korean rendering.
const (
	EventJoined             = "joined"              // user joined by themselves
	EventJoinedByLink       = "joined_by_link"      // user joined by an invite link by made
	EventLeft               = "left"                // user left
	EventRemoved            = "removed"             // by removed user
	EventAdded              = "added"               // by added user (a contact of by's)
	EventInvitationAccepted = "invitation_accepted" // user accepted by's invitation
	EventRoleChanged        = "role_changed"        // by made user role
	EventOwnerChanged       = "owner_changed"       // by handed the room to user
	EventRenamed            = "renamed"             // by renamed the room to name
)

// SystemEvent is a system message's structured fields. Names are the
// display names at the time, for clients that have not loaded them.
type SystemEvent struct {
	Event    string `json:"event"`
	User     int64  `json:"user,omitempty"`
	UserName string `json:"user_name,omitempty"`
	By       int64  `json:"by,omitempty"`
	ByName   string `json:"by_name,omitempty"`
	Role     string `json:"role,omitempty"`
	Name     string `json:"name,omitempty"`
}

// announce posts ev in the room as a system message. It runs after the
// change committed and never fails it: the hub logs a failed post.
func (s *Rooms) announce(ctx context.Context, roomID int64, ev SystemEvent) {
	if s.live == nil {
		return
	}
	names := s.displayNames(ctx, ev.User, ev.By)
	ev.UserName, ev.ByName = names[ev.User], names[ev.By]
	raw, err := json.Marshal(ev)
	if err != nil {
		return // a struct of strings and ints always marshals
	}
	// Unique per occurrence: the same member may join, leave and join
	// again, and each is its own message.
	idem := fmt.Sprintf("sys-%s-%d-%d", ev.Event, ev.User, time.Now().UnixNano())
	s.live.Announce(ctx, roomID, ev.Korean(), idem, raw)
}

// displayNames reads users' display names; a failed read leaves them out
// and the body names the user by id instead.
func (s *Rooms) displayNames(ctx context.Context, ids ...int64) map[int64]string {
	names, err := s.people.DisplayNames(ctx, ids)
	if err != nil {
		return map[int64]string{}
	}
	return names
}

// Korean renders the event as the message body.
func (e SystemEvent) Korean() string {
	user, by := nameOr(e.UserName, e.User), nameOr(e.ByName, e.By)
	switch e.Event {
	case EventJoined:
		return user + "님이 들어왔습니다."
	case EventJoinedByLink:
		return user + "님이 " + by + "님의 초대 링크로 들어왔습니다."
	case EventLeft:
		return user + "님이 나갔습니다."
	case EventRemoved:
		return by + "님이 " + user + "님을 내보냈습니다."
	case EventAdded:
		return by + "님이 " + user + "님을 초대했습니다."
	case EventInvitationAccepted:
		return user + "님이 " + by + "님의 초대를 수락했습니다."
	case EventRoleChanged:
		if e.Role == RoleAdmin {
			return by + "님이 " + user + "님을 관리자로 지정했습니다."
		}
		return by + "님이 " + user + "님의 관리자 권한을 해제했습니다."
	case EventOwnerChanged:
		return by + "님이 " + user + "님에게 방장을 넘겼습니다."
	case EventRenamed:
		return by + "님이 방 이름을 '" + e.Name + "'(으)로 바꿨습니다."
	}
	return e.Event
}

func nameOr(name string, id int64) string {
	if name != "" {
		return name
	}
	return "#" + strconv.FormatInt(id, 10)
}
