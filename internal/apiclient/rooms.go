package apiclient

// Room is a room as the REST API shows it to one user (GET /api/rooms/:id,
// the room list, search), with the fields clients and tests read.
type Room struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	OwnerID     int64  `json:"owner_id"`
	Direct      bool   `json:"direct"`
	HasPassword bool   `json:"has_password"`
	MemberCount int64  `json:"member_count"`
	Role        string `json:"role"`
}

// RoomList is a page of rooms (GET /api/rooms, /api/rooms/search).
type RoomList struct {
	Rooms      []Room `json:"rooms"`
	NextCursor string `json:"next_cursor"`
}

// InviteLink is an invite link as its room's admins see it.
type InviteLink struct {
	Code    string `json:"code"`
	URL     string `json:"url"`
	RoomID  int64  `json:"room_id"`
	MaxUses int    `json:"max_uses"`
	Uses    int    `json:"uses"`
	State   string `json:"state"`
}
