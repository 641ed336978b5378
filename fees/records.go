package fees

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"moim/api"
)

// DuesRecord is dues settled outside Moim's wallets (cash, a bank
// transfer) or waived, for one member and period. It counts in the status
// but never in the fund's balance.
type DuesRecord struct {
	ID        int64     `gorm:"primaryKey" json:"id"`
	RoomID    int64     `gorm:"not null;index:room_period,priority:1" json:"room_id"`
	Period    string    `gorm:"size:8;not null;index:room_period,priority:2" json:"period"`
	UserID    int64     `gorm:"not null" json:"user_id"`
	Amount    int64     `gorm:"not null" json:"amount"`
	Waived    bool      `gorm:"not null" json:"waived"`
	Memo      string    `gorm:"size:800;not null" json:"memo"`
	By        int64     `gorm:"not null" json:"by"`
	CreatedAt time.Time `json:"created_at"`
}

// DuesAudit is one change to a room's dues: a policy, a manual record or
// a waiver. Members can read the whole trail.
type DuesAudit struct {
	ID        int64           `gorm:"primaryKey" json:"id"`
	RoomID    int64           `gorm:"not null;index" json:"room_id"`
	By        int64           `gorm:"not null" json:"by"`
	Action    string          `gorm:"size:16;not null" json:"action"`
	Detail    json.RawMessage `gorm:"type:text;not null" json:"detail"`
	CreatedAt time.Time       `json:"created_at"`
}

func audit(tx *gorm.DB, room, by int64, action string, detail any) error {
	raw, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	return tx.Create(&DuesAudit{RoomID: room, By: by, Action: action, Detail: raw}).Error
}

// Record notes an off-wallet payment (amount > 0) or a waiver for a
// member and period; admins only.
func (f *Fees) Record(ctx context.Context, room, by, member int64, period string, amount int64, waive bool, memo string) (*DuesRecord, error) {
	if err := f.requireAdmin(ctx, room, by); err != nil {
		return nil, err
	}
	if period == "" {
		return nil, api.Errorf(400, "invalid_period", "period is required")
	}
	period, err := checkPeriod(period)
	if err != nil {
		return nil, err
	}
	if memo, err = checkMemo(memo, false); err != nil {
		return nil, err
	}
	if !waive {
		if err := f.checkAmount(amount); err != nil {
			return nil, err
		}
	}
	if _, err := f.rooms.Role(ctx, room, member); err != nil {
		return nil, api.NotFound("member")
	}
	if waive {
		p, err := f.policyForPeriod(ctx, room, period)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, api.Conflict("no_dues", "no dues rule applies to that period, so there is nothing to waive")
		}
	}
	name, err := f.rooms.DisplayName(ctx, member)
	if err != nil {
		return nil, err
	}
	r := &DuesRecord{RoomID: room, Period: period, UserID: member, Amount: amount, Waived: waive, Memo: memo, By: by}
	if waive {
		r.Amount = 0
	}
	action := "record"
	if waive {
		action = "waiver"
	}
	err = f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(r).Error; err != nil {
			return err
		}
		if err := audit(tx, room, by, action, r); err != nil {
			return err
		}
		body := fmt.Sprintf("%s님의 %s 회비 %s원을 모임통장 밖에서 받은 것으로 기록했습니다(통장 잔액에는 들어가지 않음).", name, period, won(amount))
		if waive {
			body = fmt.Sprintf("%s님의 %s 회비를 면제했습니다.", name, period)
		}
		if r.Memo != "" {
			body += " 메모: " + r.Memo
		}
		ev, err := event(room, body, map[string]any{"event": "dues_" + action, "user": member, "period": period, "amount": r.Amount,
			"currency": Currency, "memo": r.Memo, "by": by, "off_wallet": true})
		if err != nil {
			return err
		}
		return tx.Create(ev).Error
	})
	if err != nil {
		return nil, fmt.Errorf("fees: %s for %d in room %d: %w", action, member, room, err)
	}
	f.nudge()
	return r, nil
}

// Audit lists a room's dues changes to a member, newest first.
func (f *Fees) Audit(ctx context.Context, room, user int64) ([]DuesAudit, error) {
	if _, err := f.requireMember(ctx, room, user); err != nil {
		return nil, err
	}
	out := []DuesAudit{}
	if err := f.db.WithContext(ctx).Where("room_id = ?", room).Order("id DESC").Limit(500).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("fees: audit of room %d: %w", room, err)
	}
	return out, nil
}

// Remind posts, through the outbox, who has not paid this period; admins
// only. It reports the members named.
func (f *Fees) Remind(ctx context.Context, room, by int64) ([]MemberDues, error) {
	if err := f.requireAdmin(ctx, room, by); err != nil {
		return nil, err
	}
	s, err := f.StatusOf(ctx, room, by, "")
	if err != nil {
		return nil, err
	}
	ev, unpaid, err := reminder(room, s)
	if err != nil {
		return nil, err
	}
	if err := f.db.WithContext(ctx).Create(ev).Error; err != nil {
		return nil, fmt.Errorf("fees: queue reminder for room %d: %w", room, err)
	}
	f.nudge()
	if unpaid == nil {
		unpaid = []MemberDues{}
	}
	return unpaid, nil
}

// reminder words a period's reminder as a fee event naming who has not
// paid; it also returns those members.
func reminder(room int64, s *Status) (*Outbox, []MemberDues, error) {
	var unpaid []MemberDues
	var names []string
	for _, m := range s.Members {
		if m.State != "paid" && m.State != "waived" {
			unpaid = append(unpaid, m)
			names = append(names, m.Name)
		}
	}
	body := fmt.Sprintf("%s 회비를 모두 냈습니다.", s.Period)
	if len(unpaid) > 0 {
		body = fmt.Sprintf("%s 회비 %s원, 마감 %s. 아직 안 낸 분: %s.", s.Period, won(s.Amount), s.DueDate, strings.Join(names, ", "))
	}
	ids := make([]int64, len(unpaid))
	for i, m := range unpaid {
		ids[i] = m.UserID
	}
	fee, err := json.Marshal(map[string]any{"event": "reminder", "period": s.Period, "amount": s.Amount, "currency": Currency, "due_date": s.DueDate, "unpaid": ids})
	if err != nil {
		return nil, nil, err
	}
	return &Outbox{RoomID: room, Body: body, Fee: string(fee)}, unpaid, nil
}
