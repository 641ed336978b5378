package rooms

import (
	"context"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/api"
	"moim/limit"
)

// Routes registers the room routes under r (mounted at /api); all of them
// need a token.
func (s *Rooms) Routes(r fiber.Router, auth fiber.Handler) {
	g := r.Group("/rooms", auth)
	g.Post("/", s.handleCreate)
	g.Get("/", s.handleMine)
	g.Post("/direct", s.handleDirect)
	g.Get("/search", s.handleSearch)
	g.Get("/:id", s.handleGet)
	g.Patch("/:id", s.handleUpdate)
	g.Delete("/:id", s.handleDelete)
	g.Post("/:id/join", s.handleJoin)
	g.Post("/:id/leave", s.handleLeave)
	g.Get("/:id/members", s.handleMembers)
	g.Delete("/:id/members/:user_id", s.onMember(s.Kick))
	g.Put("/:id/members/:user_id/role", s.handleSetRole)
	g.Get("/:id/bans", s.handleBans)
	g.Delete("/:id/bans/:user_id", s.onMember(s.Unban))
	g.Put("/:id/owner", s.handleTransferOwnership)
}

func (s *Rooms) handleCreate(c *fiber.Ctx) error {
	var req struct {
		Name        string  `json:"name"`
		Description string  `json:"description"`
		Password    string  `json:"password"`
		MemberIDs   []int64 `json:"member_ids"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	v, err := s.Create(c.UserContext(), accounts.UserID(c), req.Name, req.Description, req.Password, req.MemberIDs)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}

func (s *Rooms) handleMine(c *fiber.Ctx) error {
	vs, err := s.Mine(c.UserContext(), accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"rooms": vs})
}

func (s *Rooms) handleDirect(c *fiber.Ctx) error {
	var req struct {
		UserID int64 `json:"user_id"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if req.UserID <= 0 {
		return api.Validation("user_id must be a positive integer")
	}
	v, created, err := s.Direct(c.UserContext(), accounts.UserID(c), req.UserID)
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(v)
}

func (s *Rooms) handleSearch(c *fiber.Ctx) error {
	limit, cursor, err := api.Page(c, 20, 100)
	if err != nil {
		return err
	}
	vs, next, err := s.Search(c.UserContext(), accounts.UserID(c), c.Query("q"), limit, cursor)
	if err != nil {
		return err
	}
	resp := fiber.Map{"rooms": vs, "next_cursor": ""}
	if next > 0 {
		resp["next_cursor"] = strconv.FormatInt(next, 10)
	}
	return c.JSON(resp)
}

func (s *Rooms) handleGet(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	v, err := s.Get(c.UserContext(), id, accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Rooms) handleUpdate(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var p Patch
	if err := api.Decode(c, &p); err != nil {
		return err
	}
	v, err := s.Update(c.UserContext(), id, accounts.UserID(c), p)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Rooms) handleDelete(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := s.Delete(c.UserContext(), id, accounts.UserID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Rooms) handleJoin(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		Password string `json:"password"`
	}
	// The body is optional: rooms without a password need none.
	if len(c.Body()) > 0 {
		if err := api.Decode(c, &req); err != nil {
			return err
		}
	}
	v, err := s.Join(c.UserContext(), id, accounts.UserID(c), req.Password, c.IP())
	var th *Throttled
	if errors.As(err, &th) {
		return limit.TooMany(c, th.Wait, "too many wrong room passwords")
	}
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Rooms) handleLeave(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := s.Leave(c.UserContext(), id, accounts.UserID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Rooms) handleMembers(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	ms, err := s.Members(c.UserContext(), id, accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"members": ms})
}

// onMember serves a route that acts on one member of a room
// (/:id/…/:user_id) on behalf of the caller and answers 204.
func (s *Rooms) onMember(act func(ctx context.Context, roomID, userID, targetID int64) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := api.ParamID(c, "id")
		if err != nil {
			return err
		}
		target, err := api.ParamID(c, "user_id")
		if err != nil {
			return err
		}
		if err := act(c.UserContext(), id, accounts.UserID(c), target); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

func (s *Rooms) handleSetRole(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	target, err := api.ParamID(c, "user_id")
	if err != nil {
		return err
	}
	var req struct {
		Role string `json:"role"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	m, err := s.SetRole(c.UserContext(), id, accounts.UserID(c), target, req.Role)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Rooms) handleBans(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	bans, err := s.Bans(c.UserContext(), id, accounts.UserID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"bans": bans})
}

func (s *Rooms) handleTransferOwnership(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		UserID int64 `json:"user_id"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if req.UserID <= 0 {
		return api.Validation("user_id must name a member")
	}
	v, err := s.TransferOwnership(c.UserContext(), id, accounts.UserID(c), req.UserID)
	if err != nil {
		return err
	}
	return c.JSON(v)
}
