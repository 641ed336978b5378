package rooms

import (
	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
)

// NoticeRoutes registers setting and clearing a room's notice under r
// (mounted at /api); both need a token.
func (s *Rooms) NoticeRoutes(r fiber.Router, auth fiber.Handler) {
	r.Put("/rooms/:id/notice", auth, s.handleSetNotice)
	r.Delete("/rooms/:id/notice", auth, s.handleClearNotice)
}

func (s *Rooms) handleSetNotice(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		Seq int64 `json:"seq"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	v, err := s.SetNotice(c.UserContext(), id, accounts.UserID(c), req.Seq)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Rooms) handleClearNotice(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := s.ClearNotice(c.UserContext(), id, accounts.UserID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
