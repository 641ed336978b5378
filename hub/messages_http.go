package hub

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"moim/api"
	"moim/chatlog"
)

// MessageRoutes registers history, search, REST sending and editing under r
// (mounted at /api); all need a token.
func (h *Hub) MessageRoutes(r fiber.Router, auth fiber.Handler, userID func(*fiber.Ctx) int64) {
	r.Get("/rooms/:id/messages", auth, h.member(userID, h.handleHistory))
	r.Get("/rooms/:id/messages/search", auth, h.member(userID, h.handleSearch))
	r.Post("/rooms/:id/messages", auth, h.member(userID, h.handlePost))
	r.Patch("/rooms/:id/messages/:seq", auth, h.member(userID, h.handleEdit))
}

type roomHandler func(c *fiber.Ctx, room, user int64) error

// member admits only members of the room in the path.
func (h *Hub) member(userID func(*fiber.Ctx) int64, next roomHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		room, err := api.ParamID(c, "id")
		if err != nil {
			return err
		}
		user := userID(c)
		ok, err := h.broker.isMember(c.UserContext(), room, user)
		if err != nil {
			return err
		}
		if !ok {
			return api.NotMember()
		}
		return next(c, room, user)
	}
}

// messageList writes encoded msg events as {"messages":[…]} without
// decoding them.
func messageList(c *fiber.Ctx, msgs [][]byte) error {
	return c.JSON(fiber.Map{"messages": rawList(msgs)})
}

func rawList(msgs [][]byte) []json.RawMessage {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		raw[i] = m
	}
	return raw
}

func seqParam(c *fiber.Ctx, name string) (int64, error) {
	s := c.Query(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, api.Validation(name + " must be a seq (a non-negative integer)")
	}
	return n, nil
}

// handleHistory: ?after=SEQ oldest first, else ?before=SEQ (default: the
// newest) newest first. Charged to the sync budget like a sync frame.
func (h *Hub) handleHistory(c *fiber.Ctx, room, user int64) error {
	limit, err := api.Limit(c, 50, 100)
	if err != nil {
		return err
	}
	before, err := seqParam(c, "before")
	if err != nil {
		return err
	}
	after, err := seqParam(c, "after")
	if err != nil {
		return err
	}
	if before >= 0 && after >= 0 {
		return api.Validation("give before or after, not both")
	}
	if err := h.withinREST(c, user, budgetSync, h.cfg.Budget.Sync, "reading history too fast"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	var msgs [][]byte
	var gaps []chatlog.Gap
	if after >= 0 {
		if msgs, err = h.After(ctx, room, after, limit); err == nil {
			gaps, err = h.gapsIn(ctx, room, after, msgs)
		}
	} else {
		if msgs, err = h.Before(ctx, room, max(before, 0), limit); err == nil && len(msgs) > 0 {
			asc := slices.Clone(msgs)
			slices.Reverse(asc)
			gaps, err = h.gapsIn(ctx, room, seqOf(asc[0])-1, asc)
		}
	}
	if err != nil {
		return err
	}
	h.chargeSync(user, len(msgs))
	if len(gaps) > 0 {
		return c.JSON(fiber.Map{"messages": rawList(msgs), "gaps": gaps})
	}
	return messageList(c, msgs)
}

// handleSearch is charged to the sync budget like history.
func (h *Hub) handleSearch(c *fiber.Ctx, room, user int64) error {
	limit, err := api.Limit(c, 20, 100)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(c.Query("q"))
	if n := utf8.RuneCountInString(q); n < 1 || n > 100 {
		return api.Validation("q must be 1 to 100 characters")
	}
	if h.history == nil {
		return api.Errorf(fiber.StatusServiceUnavailable, "unavailable", "search needs the message store")
	}
	if err := h.withinREST(c, user, budgetSync, h.cfg.Budget.Sync, "searching too fast"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	msgs, err := h.history.Search(ctx, room, q, limit)
	if err != nil {
		return err
	}
	h.chargeSync(user, len(msgs))
	return messageList(c, msgs)
}

// handlePost sends a message over REST through the hub's own path (bots
// and integrations) and answers with the ack.
func (h *Hub) handlePost(c *fiber.Ctx, room, user int64) error {
	var req struct {
		CID     string `json:"cid"`
		Body    string `json:"body"`
		ReplyTo int64  `json:"reply_to"`
		// Attachment is the id of an upload to this room by the sender.
		Attachment string `json:"attachment"`
		// Resend marks a retry of a cid whose answer never came.
		Resend bool `json:"resend"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if err := checkSend(req.CID, req.Body, req.Attachment, req.ReplyTo); err != nil {
		return err
	}
	if wait := h.adm.busy(); wait > 0 {
		return h.busyREST(c, wait)
	}
	if err := h.withinREST(c, user, budgetSend, h.cfg.Budget.Send, "sending too fast"); err != nil {
		return err
	}
	name, err := h.dir.DisplayName(c.UserContext(), user)
	if err != nil {
		return err
	}
	d := chatlog.NewDraft(room, user, name, req.Body, req.CID, chatlog.KindText, req.ReplyTo, time.Now().UnixMilli())
	d.Resend = req.Resend
	h.withMentions(c.UserContext(), room, req.Body, d.WithMentions)
	if err := h.attach(c.UserContext(), d, req.Attachment); err != nil {
		return err
	}
	acc, err := h.accept(d)
	if err == errNotMember {
		return api.NotMember()
	}
	if err != nil {
		return api.Errorf(fiber.StatusServiceUnavailable, "unavailable", "message not acknowledged; retry with the same cid and resend true")
	}
	status := fiber.StatusCreated
	if acc.Dup {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(ackEvent{Type: "ack", CID: req.CID, Room: room, Seq: acc.Seq, TS: acc.TS})
}
