package apiclient

import "encoding/json"

// Frame is any server frame of protocol v1 (docs/PROTOCOL.md); a field a
// frame type does not carry stays zero.
type Frame struct {
	Type    string `json:"type"`
	Room    int64  `json:"room"`
	Seq     int64  `json:"seq"`
	From    int64  `json:"from"`
	Name    string `json:"name"`
	Body    string `json:"body"`
	CID     string `json:"cid"`
	TS      int64  `json:"ts"`
	Kind    string `json:"kind"`
	ReplyTo int64  `json:"reply_to"`
	User    int64  `json:"user"`
	Node    string `json:"node"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Online  bool   `json:"online"`
	By      int64  `json:"by"`
	Deleted bool   `json:"deleted"`
	To      int64  `json:"to"` // a gap's last seq (From is its first)
	// RetryAfterMS is a rate_limited or busy error's wait.
	RetryAfterMS int64 `json:"retry_after_ms"`
	// Notice is a notice event's notice (nil when it was cleared).
	Notice *struct {
		Seq  int64  `json:"seq"`
		Body string `json:"body"`
	} `json:"notice"`
	// Mentions are the members a message names as @username.
	Mentions []int64 `json:"mentions"`
	// Fee is a fee message's structured fields.
	Fee json.RawMessage `json:"fee"`
	// Attachment is the upload a message carries.
	Attachment *Attachment `json:"attachment"`
	// EditedAt is an edited message's (or edited event's) edit time.
	EditedAt int64 `json:"edited_at"`
	// System is a system message's structured fields.
	System struct {
		Event    string `json:"event"`
		User     int64  `json:"user"`
		UserName string `json:"user_name"`
		By       int64  `json:"by"`
		Role     string `json:"role"`
		Name     string `json:"name"`
	} `json:"system"`
	// Invitation is an invitation event's invitation.
	Invitation struct {
		ID        int64  `json:"id"`
		RoomID    int64  `json:"room_id"`
		RoomName  string `json:"room_name"`
		InviterID int64  `json:"inviter_id"`
	} `json:"invitation"`
}

// Attachment is an upload's answer and a message's attachment.
type Attachment struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Size      int64  `json:"size"`
	Kind      string `json:"kind"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Thumbnail bool   `json:"thumbnail"`
}
