package rooms

import (
	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
)

// InvitationRoutes registers inviting into a room and the invitee's
// routes under r (mounted at /api); all of them need a token.
func (s *Rooms) InvitationRoutes(r fiber.Router, auth fiber.Handler) {
	r.Post("/rooms/:id/members", auth, s.handleInvite)
	r.Get("/invitations", auth, s.handleInvitations)
	r.Post("/invitations/:id/accept", auth, s.handleAccept)
	r.Post("/invitations/:id/decline", auth, s.handleDecline)
}

func (s *Rooms) handleInvite(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		UserIDs []int64 `json:"user_ids"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	res, err := s.Invite(c.UserContext(), id, accounts.UserID(c), req.UserIDs)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Rooms) handleInvitations(c *fiber.Ctx) error {
	invs, err := s.Invitations(c.UserContext(), accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"invitations": invs})
}

func (s *Rooms) handleAccept(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	v, err := s.Accept(c.UserContext(), id, accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Rooms) handleDecline(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := s.Decline(c.UserContext(), id, accounts.UserID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
