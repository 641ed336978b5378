package rooms

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
)

// Ban keeps a kicked user out of a room until an admin lifts it: without
// it a kicked member of an open room, or one who knows the password,
// would be back at once.
type Ban struct {
	RoomID    int64     `gorm:"primaryKey;autoIncrement:false"`
	UserID    int64     `gorm:"primaryKey;autoIncrement:false;index"`
	BannedBy  int64     `gorm:"not null"`
	CreatedAt time.Time `gorm:"not null"`
}

// BanView is one ban as listed to the room's admins.
type BanView struct {
	UserID      int64     `json:"user_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	BannedBy    int64     `json:"banned_by"`
	CreatedAt   time.Time `json:"created_at"`
}

var errBanned = api.Errorf(403, "banned", "you were removed from this room; an admin must lift the ban before you can join again")

// refuseBanned is 403 banned when userID is banned from roomID.
func (s *Rooms) refuseBanned(ctx context.Context, roomID, userID int64) error {
	var n int64
	if err := s.db.WithContext(ctx).Model(&Ban{}).Where("room_id = ? AND user_id = ?", roomID, userID).Count(&n).Error; err != nil {
		return fmt.Errorf("rooms: read ban of %d in %d: %w", userID, roomID, err)
	}
	if n > 0 {
		return errBanned
	}
	return nil
}

// ban removes a member and bans them in one transaction, with the Redis
// mirror, so no join can slip between the two.
func (s *Rooms) ban(ctx context.Context, roomID, byID, targetID int64) error {
	err := s.mirrored(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("room_id = ? AND user_id = ?", roomID, targetID).Delete(&Member{}).Error; err != nil {
			return err
		}
		// A ban left from an earlier kick stays as it is.
		return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Ban{RoomID: roomID, UserID: targetID, BannedBy: byID, CreatedAt: time.Now().UTC()}).Error
	}, func() error {
		return s.mirror.Remove(ctx, roomID, targetID)
	}, func() error {
		return s.mirror.Add(ctx, roomID, targetID)
	})
	if err != nil {
		return fmt.Errorf("rooms: kick %d from %d: %w", targetID, roomID, err)
	}
	s.changed(ctx, roomID, []int64{targetID}, false)
	return nil
}

// requireAdmin refuses a caller who is not the room's owner or an admin.
func (s *Rooms) requireAdmin(ctx context.Context, roomID, userID int64) error {
	role, room, err := s.Role(ctx, roomID, userID)
	if err != nil {
		return err
	}
	if !IsAdmin(role) || room.Direct {
		return api.Forbidden("only the room's owner and admins can manage bans")
	}
	return nil
}

// Bans lists a room's bans, newest first, to its admins.
func (s *Rooms) Bans(ctx context.Context, roomID, userID int64) ([]BanView, error) {
	if err := s.requireAdmin(ctx, roomID, userID); err != nil {
		return nil, err
	}
	var bans []Ban
	err := s.db.WithContext(ctx).Where("room_id = ?", roomID).Order("created_at DESC, user_id").Find(&bans).Error
	if err != nil {
		return nil, fmt.Errorf("rooms: list bans of %d: %w", roomID, err)
	}
	ids := make([]int64, len(bans))
	for i, b := range bans {
		ids[i] = b.UserID
	}
	names, err := s.nameUsers(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("rooms: name the banned of %d: %w", roomID, err)
	}
	out := make([]BanView, 0, len(bans))
	for _, b := range bans {
		if n, ok := names[b.UserID]; ok {
			out = append(out, BanView{UserID: b.UserID, Username: n.username, DisplayName: n.display, BannedBy: b.BannedBy, CreatedAt: b.CreatedAt})
		}
	}
	return out, nil
}

// Unban lifts a ban; the user may join again. Lifting one that is not
// there is 404.
func (s *Rooms) Unban(ctx context.Context, roomID, userID, targetID int64) error {
	if err := s.requireAdmin(ctx, roomID, userID); err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Where("room_id = ? AND user_id = ?", roomID, targetID).Delete(&Ban{})
	if res.Error != nil {
		return fmt.Errorf("rooms: unban %d in %d: %w", targetID, roomID, res.Error)
	}
	if res.RowsAffected == 0 {
		return api.NotFound("ban")
	}
	return nil
}
