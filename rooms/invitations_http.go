package rooms

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
	"moim/limit"
)

// InvitationRoutes registers inviting into a room and the invitee's
// routes under r (mounted at /api); all of them need a token.
func (s *Rooms) InvitationRoutes(r fiber.Router, auth fiber.Handler) {
	r.Post("/rooms/:id/members", auth, s.handleInvite)
	r.Get("/invitations", auth, s.handleInvitations)
	r.Post("/invitations/:id/accept", auth, s.handleAccept)
	r.Post("/invitations/:id/decline", auth, s.handleDecline)
	r.Post("/rooms/:id/invite-links", auth, s.handleCreateLink)
	r.Get("/rooms/:id/invite-links", auth, s.handleLinks)
	r.Delete("/rooms/:id/invite-links/:code", auth, s.handleRevokeLink)
	r.Post("/invite-links/:code/join", auth, s.handleJoinByLink)
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

// withURL fills in links' URLs on the origin the request came to.
func withURL(c *fiber.Ctx, links ...*InviteLinkView) {
	for _, l := range links {
		l.URL = c.BaseURL() + InvitePath(l.Code)
	}
}

func (s *Rooms) handleCreateLink(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		ExpiresIn int64 `json:"expires_in_s"`
		MaxUses   int   `json:"max_uses"`
	}
	if len(c.Body()) > 0 {
		if err := api.Decode(c, &req); err != nil {
			return err
		}
	}
	if req.ExpiresIn < 0 || req.ExpiresIn > int64(maxLinkTTL/time.Second) {
		return api.Validation("expires_in_s must be 60 to 2592000 seconds (30 days), or 0 for a week")
	}
	l, err := s.CreateInviteLink(c.UserContext(), id, accounts.UserID(c), time.Duration(req.ExpiresIn)*time.Second, req.MaxUses)
	if err != nil {
		return err
	}
	withURL(c, l)
	return c.Status(fiber.StatusCreated).JSON(l)
}

func (s *Rooms) handleLinks(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	links, err := s.InviteLinks(c.UserContext(), id, accounts.UserID(c))
	if err != nil {
		return err
	}
	for i := range links {
		withURL(c, &links[i])
	}
	return c.JSON(fiber.Map{"links": links})
}

func (s *Rooms) handleRevokeLink(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := s.RevokeInviteLink(c.UserContext(), id, accounts.UserID(c), c.Params("code")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Rooms) handleJoinByLink(c *fiber.Ctx) error {
	v, err := s.JoinByLink(c.UserContext(), c.Params("code"), accounts.UserID(c), c.IP())
	var th *Throttled
	if errors.As(err, &th) {
		return limit.TooMany(c, th.Wait, "too many failed room joins")
	}
	if err != nil {
		return err
	}
	return c.JSON(v)
}
