package main

import (
	"strings"
	"testing"
	"time"

	"moim/internal/apiclient"
	"moim/internal/testkit"
	"moim/rooms"
)

type inviteLink = apiclient.InviteLink

// link makes an invite link into room as c.
func (c *client) link(room int64, body map[string]any) inviteLink {
	c.t.Helper()
	return c.kit().InviteLink(room, body)
}

// links lists room's invite links by code, as c (an admin) sees them.
func (c *client) links(room int64) map[string]inviteLink {
	c.t.Helper()
	var l struct{ Links []inviteLink }
	c.must(200, "GET", urlf("/api/rooms/%d/invite-links", room), nil, &l)
	out := map[string]inviteLink{}
	for _, x := range l.Links {
		out[x.Code] = x
	}
	return out
}

var _ = alsoOn(onMemory, TestInviteLinks)

// TestInviteLinks: a link lets people into a password room without the
// password, as many as it allows; a used-up, revoked, expired or unknown
// link refuses with its own code, and a banned user stays out.
func TestInviteLinks(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	g1, g2, g3 := n.user(t, "Guest1"), n.user(t, "Guest2"), n.user(t, "Guest3")
	room := owner.createRoom(map[string]any{"name": "Club", "password": "club password", "member_ids": []int64{member.id}})
	linksPath := urlf("/api/rooms/%d/invite-links", room.ID)

	// Plain members make links only when the room lets them.
	member.fails(403, "forbidden", "POST", linksPath, map[string]any{})
	var v struct {
		MembersInvite bool `json:"members_invite"`
	}
	member.fails(403, "forbidden", "PATCH", urlf("/api/rooms/%d", room.ID), map[string]any{"members_invite": true})
	owner.must(200, "PATCH", urlf("/api/rooms/%d", room.ID), map[string]any{"members_invite": true}, &v)
	if !v.MembersInvite {
		t.Fatalf("members_invite not set: %+v", v)
	}
	l := member.link(room.ID, map[string]any{"expires_in_s": 3600, "max_uses": 2})
	if len(l.Code) != 32 || !strings.HasSuffix(l.URL, "/#/invite/"+l.Code) || l.State != "active" || l.MaxUses != 2 {
		t.Fatalf("new link %+v", l)
	}
	owner.fails(400, "validation", "POST", linksPath, map[string]any{"expires_in_s": 10})
	owner.fails(400, "validation", "POST", linksPath, map[string]any{"max_uses": -1})

	// Two joins use it up; joining again as a member uses nothing.
	var joined roomView
	g1.must(200, "POST", testkit.JoinPath(l.Code), nil, &joined)
	if joined.ID != room.ID || joined.Role != "member" {
		t.Fatalf("joined by link: %+v", joined)
	}
	g1.must(200, "POST", testkit.JoinPath(l.Code), nil, nil)
	g2.must(200, "POST", testkit.JoinPath(l.Code), nil, nil)
	g3.fails(410, "invite_used_up", "POST", testkit.JoinPath(l.Code), nil)
	if got := owner.links(room.ID)[l.Code]; got.Uses != 2 || got.State != "used_up" {
		t.Fatalf("listed link after two joins: %+v", got)
	}
	var found []int64
	for _, m := range owner.history(room.ID) {
		if m.Kind == "system" && m.System.Event == "joined_by_link" {
			if m.System.By != member.id {
				t.Fatalf("join by link names %d as the link's maker, want %d", m.System.By, member.id)
			}
			found = append(found, m.System.User)
		}
	}
	if len(found) != 2 || found[0] != g1.id || found[1] != g2.id {
		t.Fatalf("joined_by_link lines for %v, want [%d %d]", found, g1.id, g2.id)
	}

	// Only admins list and revoke; a revoked link says so.
	r := owner.link(room.ID, nil)
	member.fails(403, "forbidden", "GET", linksPath, nil)
	member.fails(403, "forbidden", "DELETE", linksPath+"/"+r.Code, nil)
	owner.must(204, "DELETE", linksPath+"/"+r.Code, nil, nil)
	owner.fails(404, "not_found", "DELETE", linksPath+"/nonexistentcode", nil)
	g3.fails(410, "invite_revoked", "POST", testkit.JoinPath(r.Code), nil)
	if got := owner.links(room.ID)[r.Code]; got.State != "revoked" {
		t.Fatalf("revoked link listed as %+v", got)
	}

	// Expired.
	e := owner.link(room.ID, map[string]any{"expires_in_s": 60})
	if err := n.backends.sql.Model(&rooms.InviteLink{}).Where("code = ?", e.Code).
		Update("expires_at", time.Now().Add(-time.Second)).Error; err != nil {
		t.Fatal(err)
	}
	g3.fails(410, "invite_expired", "POST", testkit.JoinPath(e.Code), nil)
	g3.fails(404, "invite_not_found", "POST", testkit.JoinPath("00000000000000000000000000000000"), nil)

	// A removed member cannot come back by link.
	owner.must(204, "DELETE", urlf("/api/rooms/%d/members/%d", room.ID, g1.id), nil, nil)
	open := owner.link(room.ID, nil)
	g1.fails(403, "banned", "POST", testkit.JoinPath(open.Code), nil)
	g3.must(200, "POST", testkit.JoinPath(open.Code), nil, nil)
}
