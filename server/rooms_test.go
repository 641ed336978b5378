package main

import (
	"context"
	"testing"

	"moim/internal/apiclient"
)

type (
	roomView = apiclient.Room
	roomList = apiclient.RoomList
)

// createRoom creates a room with every member_ids user in it: they first
// add the creator as a contact, since others would only be invited.
func (c *client) createRoom(body map[string]any) roomView {
	c.t.Helper()
	if ids, ok := body["member_ids"].([]int64); ok {
		c.knows(ids...)
	}
	var v roomView
	c.must(201, "POST", "/api/rooms", body, &v)
	return v
}

// mirrored asserts the hub's copy of membership (Redis, or the single
// node's memory) agrees with want.
func (n *testNode) mirrored(t *testing.T, roomID int64, want map[int64]bool) {
	t.Helper()
	for uid, in := range want {
		got, err := n.hub.IsMember(context.Background(), roomID, uid)
		if err != nil {
			t.Fatal(err)
		}
		if got != in {
			t.Fatalf("membership mirror: user %d in room %d = %v, want %v", uid, roomID, got, in)
		}
	}
}
