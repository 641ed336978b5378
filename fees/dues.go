package fees

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"gorm.io/gorm"

	"moim/api"
)

// DuesPolicy is what each member owes a room per period. A change made
// while a policy is in force applies from the next period; older versions
// stay, so past periods keep the amount they had.
type DuesPolicy struct {
	ID     int64  `gorm:"primaryKey" json:"-"`
	RoomID int64  `gorm:"not null;index" json:"room_id"`
	Amount int64  `gorm:"not null" json:"amount"`
	Period string `gorm:"size:8;not null" json:"period"` // monthly or weekly
	// DueDay is the day of the month (1–31; past a short month's end it
	// means its last day) or of the week (1 = Monday … 7 = Sunday).
	DueDay int `gorm:"not null" json:"due_day"`
	// From is the first period the policy applies to ("2026-11" or "2026-W47").
	From      string    `gorm:"column:effective_from;size:8;not null" json:"effective_from"`
	SetBy     int64     `gorm:"not null" json:"set_by"`
	CreatedAt time.Time `json:"created_at"`
}

var weekRE = regexp.MustCompile(`^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$`)

// periodOf names the period containing t: "2026-11" or "2026-W47".
func periodOf(kind string, t time.Time) string {
	t = t.In(kst)
	if kind == "weekly" {
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	}
	return t.Format("2006-01")
}

// dueDate is the day dues for period fall due under p.
func (p *DuesPolicy) dueDate(period string) (time.Time, error) {
	if p.Period == "weekly" {
		var y, w int
		if _, err := fmt.Sscanf(period, "%d-W%d", &y, &w); err != nil {
			return time.Time{}, err
		}
		// ISO week 1 holds January 4th; step back to its Monday.
		jan4 := time.Date(y, 1, 4, 0, 0, 0, 0, kst)
		monday := jan4.AddDate(0, 0, -((int(jan4.Weekday())+6)%7)+(w-1)*7)
		return monday.AddDate(0, 0, p.DueDay-1), nil
	}
	start, err := time.ParseInLocation("2006-01", period, kst)
	if err != nil {
		return time.Time{}, err
	}
	last := start.AddDate(0, 1, -1).Day()
	return start.AddDate(0, 0, min(p.DueDay, last)-1), nil
}

// SetDues sets a room's dues policy; admins only.
func (f *Fees) SetDues(ctx context.Context, room, user, amount int64, period string, dueDay int) (*DuesPolicy, error) {
	if err := f.requireAdmin(ctx, room, user); err != nil {
		return nil, err
	}
	if err := f.checkAmount(amount); err != nil {
		return nil, err
	}
	switch {
	case period != "monthly" && period != "weekly":
		return nil, api.Validation(`period must be "monthly" or "weekly"`)
	case period == "monthly" && (dueDay < 1 || dueDay > 31):
		return nil, api.Validation("due_day of a monthly policy is a day of the month, 1 to 31")
	case period == "weekly" && (dueDay < 1 || dueDay > 7):
		return nil, api.Validation("due_day of a weekly policy is a weekday, 1 (Monday) to 7 (Sunday)")
	}
	now := time.Now()
	from := periodOf(period, now)
	current, err := f.policyFor(ctx, room, now)
	if err != nil {
		return nil, err
	}
	if current != nil {
		// The current period keeps the rules members were told.
		from = periodOf(period, nextPeriodStart(current, now))
	}
	p := &DuesPolicy{RoomID: room, Amount: amount, Period: period, DueDay: dueDay, From: from, SetBy: user}
	name, err := f.rooms.DisplayName(ctx, user)
	if err != nil {
		return nil, err
	}
	ev, err := duesChanged(p, name)
	if err != nil {
		return nil, err
	}
	err = f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// A newer change for the same start replaces a pending one.
		if err := tx.Where("room_id = ? AND effective_from = ?", room, from).Delete(&DuesPolicy{}).Error; err != nil {
			return err
		}
		if err := tx.Create(p).Error; err != nil {
			return err
		}
		if err := audit(tx, room, user, "policy", p); err != nil {
			return err
		}
		// In the same transaction: the room hears of every rule change.
		return tx.Create(ev).Error
	})
	if err != nil {
		return nil, fmt.Errorf("fees: set dues of room %d: %w", room, err)
	}
	f.nudge()
	return p, nil
}

// EventDuesChanged is the system message event of a dues-rule change.
const EventDuesChanged = "dues_changed"

var weekdays = [...]string{"월", "화", "수", "목", "금", "토", "일"}

// duesChanged is the system message announcing p, set by byName: its
// Korean body and the structured fields clients render in the reader's
// language (docs/PROTOCOL.md).
func duesChanged(p *DuesPolicy, byName string) (*Outbox, error) {
	when := fmt.Sprintf("매월 %d일", p.DueDay)
	if p.Period == "weekly" {
		when = "매주 " + weekdays[p.DueDay-1] + "요일"
	}
	body := fmt.Sprintf("%s님이 회비를 %s원(%s 납부)으로 정했습니다. %s부터 적용됩니다.", byName, won(p.Amount), when, p.From)
	ev, err := event(p.RoomID, body, map[string]any{"event": EventDuesChanged, "by": p.SetBy, "by_name": byName,
		"amount": p.Amount, "currency": Currency, "period": p.Period, "due_day": p.DueDay, "from": p.From})
	if err != nil {
		return nil, err
	}
	ev.System = true
	return ev, nil
}

// nextPeriodStart is the first instant of the period after the one at now.
func nextPeriodStart(p *DuesPolicy, now time.Time) time.Time {
	t := now.In(kst)
	if p.Period == "weekly" {
		daysToMonday := 7 - (int(t.Weekday())+6)%7
		return time.Date(t.Year(), t.Month(), t.Day()+daysToMonday, 0, 0, 0, 0, kst)
	}
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, kst)
}

// policyFor is the policy in force at t (nil when none).
func (f *Fees) policyFor(ctx context.Context, room int64, t time.Time) (*DuesPolicy, error) {
	var ps []DuesPolicy
	if err := f.db.WithContext(ctx).Where("room_id = ?", room).Order("id DESC").Find(&ps).Error; err != nil {
		return nil, fmt.Errorf("fees: dues of room %d: %w", room, err)
	}
	return inForce(ps, t), nil
}

// inForce picks the policy in force at t from a room's policies, newest
// first; nil when none is.
func inForce(ps []DuesPolicy, t time.Time) *DuesPolicy {
	for i := range ps {
		if ps[i].From <= periodOf(ps[i].Period, t) {
			return &ps[i]
		}
	}
	return nil
}

// policyForPeriod is the policy that applied to a named period.
func (f *Fees) policyForPeriod(ctx context.Context, room int64, period string) (*DuesPolicy, error) {
	var ps []DuesPolicy
	if err := f.db.WithContext(ctx).Where("room_id = ?", room).Order("effective_from DESC, id DESC").Find(&ps).Error; err != nil {
		return nil, fmt.Errorf("fees: dues of room %d: %w", room, err)
	}
	for i := range ps {
		weekly := weekRE.MatchString(period)
		if (ps[i].Period == "weekly") == weekly && ps[i].From <= period {
			return &ps[i], nil
		}
	}
	return nil, nil
}

// Dues is a room's policy in force and the change waiting for the next period.
type Dues struct {
	Current *DuesPolicy `json:"current"`
	Next    *DuesPolicy `json:"next,omitempty"`
}

// DuesOf returns a room's dues policy to a member.
func (f *Fees) DuesOf(ctx context.Context, room, user int64) (*Dues, error) {
	if _, err := f.requireMember(ctx, room, user); err != nil {
		return nil, err
	}
	now := time.Now()
	cur, err := f.policyFor(ctx, room, now)
	if err != nil {
		return nil, err
	}
	var latest DuesPolicy
	err = f.db.WithContext(ctx).Where("room_id = ?", room).Order("id DESC").Take(&latest).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("fees: dues of room %d: %w", room, err)
	}
	d := &Dues{Current: cur}
	if err == nil && (cur == nil || latest.ID != cur.ID) && latest.From > periodOf(latest.Period, now) {
		d.Next = &latest
	}
	return d, nil
}

// MemberDues is one member's standing for a period.
type MemberDues struct {
	UserID int64  `json:"user_id"`
	Name   string `json:"name"`
	Due    int64  `json:"due"`
	Paid   int64  `json:"paid"`
	// PaidOffWallet is the part of Paid recorded by an admin (cash, bank):
	// it is not in the fund's balance.
	PaidOffWallet int64  `json:"paid_off_wallet"`
	State         string `json:"state"`
}

// Status is a room's dues for one period.
type Status struct {
	Period  string       `json:"period"`
	Amount  int64        `json:"amount"`
	DueDate string       `json:"due_date"`
	Members []MemberDues `json:"members"`
	Totals  struct {
		Due         int64 `json:"due"`
		Paid        int64 `json:"paid"`
		Members     int   `json:"members"`
		PaidMembers int   `json:"paid_members"`
	} `json:"totals"`
}

// StatusOf tells every member of a room who has paid for period (default:
// the current one). overdue means the due date has passed unpaid.
func (f *Fees) StatusOf(ctx context.Context, room, user int64, period string) (*Status, error) {
	if _, err := f.requireMember(ctx, room, user); err != nil {
		return nil, err
	}
	return f.status(ctx, room, period)
}

// status is StatusOf as the system sees it.
func (f *Fees) status(ctx context.Context, room int64, period string) (*Status, error) {
	members, err := f.rooms.Roster(ctx, room)
	if err != nil {
		return nil, err
	}
	cur, err := f.policyFor(ctx, room, time.Now())
	if err != nil {
		return nil, err
	}
	if period == "" {
		if cur == nil {
			return nil, api.Errorf(404, "no_dues", "this room has no dues policy yet; an admin sets one")
		}
		period = periodOf(cur.Period, time.Now())
	}
	if !periodRE.MatchString(period) && !weekRE.MatchString(period) {
		return nil, api.Errorf(400, "invalid_period", `period must look like "2026-11" or "2026-W47"`)
	}
	p, err := f.policyForPeriod(ctx, room, period)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, api.Errorf(404, "no_dues", "no dues policy applied to that period")
	}
	due, err := p.dueDate(period)
	if err != nil {
		return nil, api.Errorf(400, "invalid_period", "period does not exist")
	}
	paidBy, err := f.paidBy(ctx, room, period)
	if err != nil {
		return nil, err
	}
	var records []DuesRecord
	if err := f.db.WithContext(ctx).Where("room_id = ? AND period = ?", room, period).Find(&records).Error; err != nil {
		return nil, fmt.Errorf("fees: dues records of room %d: %w", room, err)
	}
	offWallet, waived := map[int64]int64{}, map[int64]bool{}
	for _, r := range records {
		offWallet[r.UserID] += r.Amount
		if r.Waived {
			waived[r.UserID] = true
		}
	}
	names, err := f.rooms.DisplayNames(ctx, members)
	if err != nil {
		return nil, fmt.Errorf("fees: member names of room %d: %w", room, err)
	}
	late := time.Now().In(kst).After(due.AddDate(0, 0, 1))
	s := &Status{Period: period, Amount: p.Amount, DueDate: due.Format("2006-01-02"), Members: []MemberDues{}}
	for _, id := range members {
		m := MemberDues{UserID: id, Name: names[id], Due: p.Amount, Paid: paidBy[id] + offWallet[id], PaidOffWallet: offWallet[id]}
		switch {
		case waived[id]:
			m.State = "waived"
			m.Due = 0
		case m.Paid >= m.Due:
			m.State = "paid"
			s.Totals.PaidMembers++
		case late:
			m.State = "overdue"
		case m.Paid > 0:
			m.State = "partial"
		default:
			m.State = "unpaid"
		}
		s.Members = append(s.Members, m)
		s.Totals.Due += m.Due
		s.Totals.Paid += m.Paid
	}
	s.Totals.Members = len(members)
	return s, nil
}

// paidBy sums each member's dues paid from their wallet for a period, net
// of refunds for it.
func (f *Fees) paidBy(ctx context.Context, room int64, period string) (map[int64]int64, error) {
	var paid []struct {
		MemberID int64
		Total    int64
	}
	err := f.db.WithContext(ctx).Model(&Transfer{}).Select("member_id, SUM(CASE WHEN kind = ? THEN amount ELSE -amount END) AS total", TransferDues).
		Where("room_id = ? AND kind IN ? AND period = ? AND refused = ''", room, []string{TransferDues, TransferRefund}, period).
		Group("member_id").Scan(&paid).Error
	if err != nil {
		return nil, fmt.Errorf("fees: paid dues of room %d: %w", room, err)
	}
	out := make(map[int64]int64, len(paid))
	for _, r := range paid {
		out[r.MemberID] = r.Total
	}
	return out, nil
}
