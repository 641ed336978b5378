package fees

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
)

// errFundClosed answers a move into or out of a deleted room's fund.
var errFundClosed = api.Errorf(404, "no_fund", "this room's fund was closed with the room")

// CloseFund closes a room's fund inside tx, the transaction deleting the
// room: 409 fund_not_empty while it holds money, which would otherwise be
// stranded where nobody can reach it. The fund row stays locked until tx
// ends and is marked closed, so a payment racing the deletion is refused
// rather than credited to a room that no longer exists.
func (f *Fees) CloseFund(tx *gorm.DB, room int64) error {
	var a Account
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("kind = ? AND owner_id = ? AND currency = ?", KindFund, room, Currency).Take(&a).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("fees: lock fund of room %d: %w", room, err)
	case a.Balance != 0:
		return api.Conflict("fund_not_empty", fmt.Sprintf("the room's fund still holds %s원; refund it to members or spend it to zero before deleting the room", won(a.Balance)))
	}
	if err := tx.Model(&Account{}).Where("id = ?", a.ID).Update("closed", true).Error; err != nil {
		return fmt.Errorf("fees: close fund of room %d: %w", room, err)
	}
	return nil
}

// Departed cancels the auto-pay orders of users who left a room (or were
// removed, or whose room was deleted) and, while the room exists, says so
// in its chat: an order into a room one is no longer in can only fail.
func (f *Fees) Departed(ctx context.Context, room int64, users []int64, deleted bool) error {
	var cancelled []Schedule
	err := f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("room_id = ? AND user_id IN ? AND state = ?", room, users, ScheduleActive).Find(&cancelled).Error; err != nil {
			return err
		}
		if len(cancelled) == 0 {
			return nil
		}
		ids := make([]int64, len(cancelled))
		for i, s := range cancelled {
			ids[i] = s.ID
		}
		if err := tx.Model(&Schedule{}).Where("id IN ? AND state = ?", ids, ScheduleActive).
			Updates(map[string]any{"state": ScheduleCancelled, "next_run": nil}).Error; err != nil {
			return err
		}
		if deleted {
			return nil
		}
		for _, s := range cancelled {
			name, err := f.rooms.DisplayName(ctx, s.UserID)
			if err != nil {
				name = fmt.Sprintf("#%d", s.UserID)
			}
			ev, err := event(room, fmt.Sprintf("%s님이 방을 나가 회비 자동이체가 해지되었습니다.", name),
				map[string]any{"event": "autopay_cancelled", "user": s.UserID, "schedule_id": s.ID, "amount": s.Amount, "currency": Currency})
			if err != nil {
				return err
			}
			if err := tx.Create(ev).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fees: cancel auto-pay of %v in room %d: %w", users, room, err)
	}
	if len(cancelled) > 0 && !deleted {
		f.nudge()
	}
	return nil
}
