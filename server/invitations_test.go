package main

import (
	"slices"
	"testing"
)

type inviteResult struct {
	Added          []int64 `json:"added"`
	Invited        []int64 `json:"invited"`
	AlreadyMembers []int64 `json:"already_members"`
	Banned         []int64 `json:"banned"`
}

type invitationList struct {
	Invitations []struct {
		ID          int64  `json:"id"`
		RoomID      int64  `json:"room_id"`
		RoomName    string `json:"room_name"`
		InviterID   int64  `json:"inviter_id"`
		InviterName string `json:"inviter_name"`
	} `json:"invitations"`
}

// history reads a room's whole history, oldest first, page by page.
func (c *client) history(room int64) []frameMsg {
	c.t.Helper()
	var all []frameMsg
	for after := int64(0); ; {
		var page struct{ Messages []frameMsg }
		c.must(200, "GET", urlf("/api/rooms/%d/messages?after=%d&limit=100", room, after), nil, &page)
		if len(page.Messages) == 0 {
			return all
		}
		all = append(all, page.Messages...)
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// systemEvents lists the events of a room's system messages, oldest first,
// checking each is a system message from nobody with a Korean body.
func (c *client) systemEvents(room int64) []string {
	c.t.Helper()
	var out []string
	for _, m := range c.history(room) {
		if m.Kind != "system" {
			continue
		}
		if m.From != 0 || m.Body == "" || m.System.Event == "" {
			c.t.Fatalf("system message %+v", m)
		}
		out = append(out, m.System.Event)
	}
	return out
}

var _ = alsoOn(onMemory, TestInvitationsFollowTheContactRule)

func TestInvitationsFollowTheContactRule(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, friend, stranger, member, outsider := n.user(t, "Owner"), n.user(t, "Friend"), n.user(t, "Stranger"), n.user(t, "Member"), n.user(t, "Outsider")
	friend.must(201, "POST", "/api/contacts", map[string]any{"username": owner.username}, nil)
	// The owner having the stranger as a contact is not enough: the
	// stranger must have the owner.
	owner.must(201, "POST", "/api/contacts", map[string]any{"username": stranger.username}, nil)
	ws := n.connect(stranger)

	// Room creation: the friend is in at once, the stranger is invited.
	var room struct {
		roomView
		Invited []int64 `json:"invited"`
	}
	owner.must(201, "POST", "/api/rooms", map[string]any{"name": "등산 모임", "member_ids": []int64{friend.id, stranger.id}}, &room)
	if room.MemberCount != 2 || !slices.Equal(room.Invited, []int64{stranger.id}) {
		t.Fatalf("created room %+v, want the friend added and the stranger invited", room)
	}
	if f := ws.await("invitation"); f.Invitation.RoomID != room.ID || f.Invitation.RoomName != "등산 모임" || f.Invitation.InviterID != owner.id || f.Invitation.ID == 0 {
		t.Fatalf("invitation event %+v", f)
	}
	if _, in := stranger.kit().Roles()[room.ID]; in {
		t.Fatal("an invited user is a member before accepting")
	}
	stranger.fails(403, "not_member", "GET", urlf("/api/rooms/%d/messages", room.ID), nil)

	// Inviting after creation: admins only; bad input is a 400, never a 500.
	mp := urlf("/api/rooms/%d/members", room.ID)
	owner.knows(member.id) // the member has the owner as a contact
	var res inviteResult
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{member.id, friend.id, owner.id}}, &res)
	if !slices.Equal(res.Added, []int64{member.id}) || len(res.Invited) != 0 || !slices.Equal(res.AlreadyMembers, []int64{friend.id}) {
		t.Fatalf("invite result %+v", res)
	}
	member.fails(403, "forbidden", "POST", mp, map[string]any{"user_ids": []int64{outsider.id}})
	outsider.fails(403, "not_member", "POST", mp, map[string]any{"user_ids": []int64{outsider.id}})
	owner.fails(400, "validation", "POST", mp, map[string]any{"user_ids": []int64{}})
	owner.fails(400, "validation", "POST", mp, map[string]any{"user_ids": []int64{987654321}})
	owner.fails(400, "bad_request", "POST", mp, map[string]any{"user_ids": "all"})
	owner.fails(400, "bad_request", "POST", mp, map[string]any{"user_ids": []int64{outsider.id}, "role": "admin"})
	owner.fails(404, "not_found", "POST", "/api/rooms/999999999/members", map[string]any{"user_ids": []int64{outsider.id}})
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{outsider.id}}, &res)
	if !slices.Equal(res.Invited, []int64{outsider.id}) || len(res.Added) != 0 {
		t.Fatalf("inviting a stranger: %+v", res)
	}
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{outsider.id}}, &res) // again: still one invitation
	var outs invitationList
	outsider.must(200, "GET", "/api/invitations", nil, &outs)
	if len(outs.Invitations) != 1 || outs.Invitations[0].RoomID != room.ID || outs.Invitations[0].InviterName != "Owner" {
		t.Fatalf("outsider's invitations %+v", outs)
	}

	// Accepting makes a member at once, live included; it is said in the room.
	var mine invitationList
	stranger.must(200, "GET", "/api/invitations", nil, &mine)
	if len(mine.Invitations) != 1 || mine.Invitations[0].RoomName != "등산 모임" {
		t.Fatalf("stranger's invitations %+v", mine)
	}
	inv := mine.Invitations[0].ID
	outsider.fails(404, "not_found", "POST", urlf("/api/invitations/%d/accept", inv), nil)
	stranger.fails(400, "bad_request", "POST", "/api/invitations/x/accept", nil)
	var joined roomView
	stranger.must(200, "POST", urlf("/api/invitations/%d/accept", inv), nil, &joined)
	if joined.ID != room.ID || joined.Role != "member" || joined.MemberCount != 4 {
		t.Fatalf("accepted into %+v", joined)
	}
	stranger.fails(404, "not_found", "POST", urlf("/api/invitations/%d/accept", inv), nil)
	n.mirrored(t, room.ID, map[int64]bool{stranger.id: true, outsider.id: false})
	got := ws.say(room.ID, "hello-1", "안녕하세요")
	if got.Seq == 0 {
		t.Fatalf("the new member's message was not acked: %+v", got)
	}
	last := stranger.history(room.ID)
	var accepted frameMsg
	for _, m := range last {
		if m.System.Event == "invitation_accepted" {
			accepted = m
		}
	}
	if accepted.System.User != stranger.id || accepted.System.By != owner.id || accepted.Body != "Stranger님이 Owner님의 초대를 수락했습니다." {
		t.Fatalf("acceptance announced as %+v", accepted)
	}
	if ev := owner.systemEvents(room.ID); !slices.Equal(ev, []string{"added", "invitation_accepted"}) {
		t.Fatalf("system messages %v, want the member added and the stranger accepting", ev)
	}

	// Declining removes the invitation and adds nobody.
	outsider.must(204, "POST", urlf("/api/invitations/%d/decline", outs.Invitations[0].ID), nil, nil)
	outsider.must(200, "GET", "/api/invitations", nil, &outs)
	if len(outs.Invitations) != 0 {
		t.Fatalf("declined invitation still listed: %+v", outs)
	}
	outsider.fails(404, "not_found", "POST", "/api/invitations/999999/decline", nil)
	if _, in := outsider.kit().Roles()[room.ID]; in {
		t.Fatal("declining made a member")
	}

	// A removed member is banned: not invitable, and an invitation sent
	// before the removal cannot be accepted.
	pending := n.user(t, "Pending")
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{pending.id}}, nil)
	var pend invitationList
	pending.must(200, "GET", "/api/invitations", nil, &pend)
	owner.must(204, "DELETE", mp+urlf("/%d", member.id), nil, nil)
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{member.id}}, &res)
	if !slices.Equal(res.Banned, []int64{member.id}) || len(res.Added)+len(res.Invited) != 0 {
		t.Fatalf("inviting a banned user: %+v", res)
	}
	pending.must(200, "POST", urlf("/api/rooms/%d/join", room.ID), nil, nil)
	owner.must(204, "DELETE", mp+urlf("/%d", pending.id), nil, nil)
	pending.fails(403, "banned", "POST", urlf("/api/invitations/%d/accept", pend.Invitations[0].ID), nil)

	// Deleting the room takes its invitations with it.
	late := n.user(t, "Late")
	owner.must(200, "POST", mp, map[string]any{"user_ids": []int64{late.id}}, nil)
	owner.must(204, "DELETE", urlf("/api/rooms/%d", room.ID), nil, nil)
	late.must(200, "GET", "/api/invitations", nil, &outs)
	if len(outs.Invitations) != 0 {
		t.Fatalf("invitation to a deleted room: %+v", outs)
	}
}
