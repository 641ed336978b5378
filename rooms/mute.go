package rooms

import (
	"context"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
)

// MuteRoutes registers muting and unmuting a room's push notifications
// for the caller under r (mounted at /api).
func (s *Rooms) MuteRoutes(r fiber.Router, auth fiber.Handler) {
	r.Put("/rooms/:id/mute", auth, s.handleMute(true))
	r.Delete("/rooms/:id/mute", auth, s.handleMute(false))
}

func (s *Rooms) handleMute(muted bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := api.ParamID(c, "id")
		if err != nil {
			return err
		}
		v, err := s.SetMuted(c.UserContext(), id, accounts.UserID(c), muted)
		if err != nil {
			return err
		}
		return c.JSON(v)
	}
}

// SetMuted mutes or unmutes a room for one of its members: a muted room
// pushes the member only messages that name them (an @mention, their
// dues, their auto-pay). It returns the room as the member sees it.
func (s *Rooms) SetMuted(ctx context.Context, roomID, userID int64, muted bool) (*View, error) {
	if _, _, err := s.Role(ctx, roomID, userID); err != nil {
		return nil, err
	}
	if err := s.db.WithContext(ctx).Model(&Member{}).Where("room_id = ? AND user_id = ?", roomID, userID).
		Update("muted", muted).Error; err != nil {
		return nil, fmt.Errorf("rooms: mute room %d for %d: %w", roomID, userID, err)
	}
	return s.view(ctx, roomID, userID)
}
