package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"moim/api"
	"moim/chatlog"
)

// Notice is a room's pinned message (공지): one per room, set by admins.
// It names the message by seq; the body shown is the message's current
// one, so an edit shows and a deletion unpins it.
type Notice struct {
	RoomID int64     `gorm:"primaryKey;autoIncrement:false"`
	Seq    int64     `gorm:"not null"`
	SetBy  int64     `gorm:"not null"`
	SetAt  time.Time `gorm:"not null"`
}

// NoticeView is a notice as rooms and the notice event show it.
type NoticeView struct {
	Seq   int64     `json:"seq"`
	Body  string    `json:"body"`
	SetBy int64     `json:"set_by"`
	SetAt time.Time `json:"set_at"`
}

// noticeEvent tells a room's connections that its notice changed;
// Notice is null when it was removed.
type noticeEvent struct {
	Type   string      `json:"type"`
	Room   int64       `json:"room"`
	Notice *NoticeView `json:"notice"`
}

// current is the notice's view with the message's current body; nil when
// the message was deleted (or is gone).
func (s *Rooms) current(ctx context.Context, n Notice) (*NoticeView, error) {
	raw, err := s.live.Message(ctx, n.RoomID, n.Seq)
	if err != nil {
		return nil, fmt.Errorf("rooms: read notice %d of room %d: %w", n.Seq, n.RoomID, err)
	}
	var m chatlog.Message
	if raw == nil || json.Unmarshal(raw, &m) != nil || m.Deleted {
		return nil, nil
	}
	return &NoticeView{Seq: n.Seq, Body: m.Body, SetBy: n.SetBy, SetAt: n.SetAt}, nil
}

// withNotices sets the notice of each view that has one.
func (s *Rooms) withNotices(ctx context.Context, vs []View, set func(i int, n *NoticeView)) error {
	if len(vs) == 0 || s.live == nil {
		return nil
	}
	at := make(map[int64]int, len(vs))
	ids := make([]int64, len(vs))
	for i, v := range vs {
		ids[i], at[v.ID] = v.ID, i
	}
	var ns []Notice
	if err := s.db.WithContext(ctx).Where("room_id IN ?", ids).Find(&ns).Error; err != nil {
		return fmt.Errorf("rooms: notices of %d rooms: %w", len(ids), err)
	}
	for _, n := range ns {
		v, err := s.current(ctx, n)
		if err != nil {
			return err
		}
		if v != nil {
			set(at[n.RoomID], v)
		}
	}
	return nil
}

// SetNotice pins message seq as the room's notice; admins only.
func (s *Rooms) SetNotice(ctx context.Context, roomID, userID, seq int64) (*NoticeView, error) {
	if seq <= 0 {
		return nil, api.Validation("seq must be a message's seq")
	}
	if err := s.canManageNotice(ctx, roomID, userID); err != nil {
		return nil, err
	}
	n := Notice{RoomID: roomID, Seq: seq, SetBy: userID, SetAt: time.Now().UTC().Truncate(time.Second)}
	v, err := s.current(ctx, n)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, api.NotFound("message")
	}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&n).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: set notice of room %d: %w", roomID, err)
	}
	s.publishNotice(ctx, roomID, v)
	return v, nil
}

// ClearNotice unpins the room's notice; admins only.
func (s *Rooms) ClearNotice(ctx context.Context, roomID, userID int64) error {
	if err := s.canManageNotice(ctx, roomID, userID); err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Where("room_id = ?", roomID).Delete(&Notice{})
	if res.Error != nil {
		return fmt.Errorf("rooms: clear notice of room %d: %w", roomID, res.Error)
	}
	if res.RowsAffected == 0 {
		return api.NotFound("notice")
	}
	s.publishNotice(ctx, roomID, nil)
	return nil
}

func (s *Rooms) canManageNotice(ctx context.Context, roomID, userID int64) error {
	role, _, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return err
	}
	if !IsAdmin(role) {
		return api.Forbidden("only the room's owner and admins can set the notice")
	}
	return nil
}

// publishNotice tells the room's live connections; a failure only delays
// them until they read the room again, so it is not the caller's error.
func (s *Rooms) publishNotice(ctx context.Context, roomID int64, v *NoticeView) {
	ev, err := json.Marshal(noticeEvent{Type: "notice", Room: roomID, Notice: v})
	if err == nil {
		_ = s.live.Publish(ctx, roomID, ev)
	}
}
