package hub

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/api"
	"moim/chatlog"
)

// EditWindow is how long after sending an author may edit a message: long
// enough to fix a typo or a wrong amount, short enough that a reply made
// yesterday still answers what was said.
const EditWindow = 24 * time.Hour

// editMessage replaces the body of user's text message seq in room and
// returns the message as edited; refusals are *api.Error.
func (h *Hub) editMessage(ctx context.Context, room, seq, user int64, body string) ([]byte, error) {
	if err := checkBody(body); err != nil {
		return nil, err
	}
	msg, err := h.find(ctx, room, seq)
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, api.NotFound("message")
	}
	var m chatlog.Message
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	switch {
	case m.Deleted:
		return nil, api.NotFound("message")
	case m.Kind != chatlog.KindText:
		return nil, api.Forbidden("only members' text messages can be edited")
	case m.From != user:
		return nil, api.Forbidden("only the author can edit a message")
	case time.Since(time.UnixMilli(m.TS)) > EditWindow:
		return nil, api.Forbidden("a message can be edited for 24 hours after it was sent")
	}
	now := time.Now().UnixMilli()
	edited, err := chatlog.Edited(msg, body, now)
	if err != nil {
		return nil, err
	}
	done, err := h.broker.edit(ctx, &chatlog.Edit{Room: room, Seq: seq, Msg: edited, Body: body, At: now})
	if err != nil {
		return nil, err
	}
	if !done {
		return nil, api.NotFound("message") // deleted meanwhile
	}
	return edited, nil
}

// edit handles the edit frame; the edited event to the room is the only
// confirmation, as for delete.
func (h *Hub) edit(c *Conn, in *inbound) {
	if !h.roomSeq(c, in, "edit") {
		return
	}
	if !c.bucket.allow(time.Now(), h.cfg.SendRate, h.cfg.SendBurst) {
		h.fail(c, "rate_limited", "editing too fast; slow down", "", in.Room)
		return
	}
	if !h.within(c, budgetSend, h.cfg.Budget.Send, "editing too fast", "", in.Room) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.editMessage(ctx, in.Room, in.Seq, c.user, in.Body)
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		h.fail(c, ae.Code, ae.Message, "", in.Room)
	case err != nil:
		h.log.Warn("edit failed", "room", in.Room, "err", err)
		h.fail(c, "unavailable", "edit failed; try again", "", in.Room)
	}
}

// handleEdit is PATCH /api/rooms/{id}/messages/{seq} {"body"}: the edit
// frame over REST, answering with the edited message.
func (h *Hub) handleEdit(c *fiber.Ctx, room, user int64) error {
	seq, err := api.ParamID(c, "seq")
	if err != nil {
		return err
	}
	var req struct {
		Body string `json:"body"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if err := h.withinREST(c, user, budgetSend, h.cfg.Budget.Send, "editing too fast"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	msg, err := h.editMessage(ctx, room, seq, user, req.Body)
	if err != nil {
		if ae := (*api.Error)(nil); errors.As(err, &ae) {
			return err
		}
		h.log.Warn("edit failed", "room", room, "err", err)
		return api.Errorf(fiber.StatusServiceUnavailable, "unavailable", "edit failed; try again")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(msg)
}
