package fees

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"moim/chatlog"
)

// Publisher posts a server-side message into a room through the hub's
// send path; idem makes a repeated post land once.
type Publisher interface {
	// fields are the message's structured "fee" or "system" object, by kind.
	Post(ctx context.Context, room int64, kind, body, idem string, fields json.RawMessage) (int64, error)
}

// Relay announces committed fee events in their rooms. Every node may run
// one: the hub's dedupe on the outbox id makes a doubly published event
// appear once, and an event whose publish failed (Redis down) is retried
// until it goes out.
func (f *Fees) Relay(ctx context.Context, pub Publisher, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for f.relayOnce(ctx, pub, log) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wake:
		}
	}
}

// relayOnce publishes one batch and reports whether there may be more.
func (f *Fees) relayOnce(ctx context.Context, pub Publisher, log *slog.Logger) bool {
	var batch []Outbox
	if err := f.db.WithContext(ctx).Where("published_at IS NULL").Order("id").Limit(100).Find(&batch).Error; err != nil {
		if ctx.Err() == nil {
			log.Warn("fee relay: read outbox", "err", err)
		}
		return false
	}
	for _, ev := range batch {
		kind := chatlog.KindFee
		if ev.System {
			kind = chatlog.KindSystem
		}
		if _, err := pub.Post(ctx, ev.RoomID, kind, ev.Body, "fee-"+strconv.FormatInt(ev.ID, 10), json.RawMessage(ev.Fee)); err != nil {
			if ctx.Err() == nil {
				log.Warn("fee relay: publish; will retry", "event", ev.ID, "err", err)
			}
			return false
		}
		now := time.Now().UTC()
		if err := f.db.WithContext(ctx).Model(&Outbox{}).Where("id = ?", ev.ID).Update("published_at", &now).Error; err != nil {
			if ctx.Err() == nil {
				log.Warn("fee relay: mark published", "event", ev.ID, "err", err)
			}
			return false
		}
	}
	return len(batch) == 100
}

// event is a fee announcement for the outbox: the Korean body every
// client can show, and the structured fields clients render in the
// reader's language.
func event(room int64, body string, fee map[string]any) (*Outbox, error) {
	raw, err := json.Marshal(fee)
	if err != nil {
		return nil, fmt.Errorf("fees: encode %v event: %w", fee["event"], err)
	}
	return &Outbox{RoomID: room, Body: body, Fee: string(raw)}, nil
}
