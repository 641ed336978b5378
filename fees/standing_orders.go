package fees

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"moim/api"
)

// Schedule is a member's standing order (예약송금, auto-pay) into a room's
// fund: monthly on a day of the month, or once at a set time.
type Schedule struct {
	ID     int64 `gorm:"primaryKey" json:"id"`
	UserID int64 `gorm:"not null;index" json:"-"`
	RoomID int64 `gorm:"not null" json:"room_id"`
	Amount int64 `gorm:"not null" json:"amount"`
	// DayOfMonth is 1–31 for a monthly order (29–31 mean the last day of
	// shorter months); 0 for a one-off at At.
	DayOfMonth int        `gorm:"not null" json:"day_of_month,omitempty"`
	At         *time.Time `json:"at,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	// NextRun is when the order runs next; nil once it has ended.
	NextRun   *time.Time `gorm:"index:schedule_due,priority:2" json:"next_run"`
	State     string     `gorm:"size:10;not null;index:schedule_due,priority:1" json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"-"`
}

// Schedule states.
const (
	ScheduleActive    = "active"
	ScheduleFinished  = "finished"
	ScheduleCancelled = "cancelled"
)

// ScheduleRun is one planned execution of a schedule. The pair (schedule,
// due time) is unique, so however many nodes see a schedule fall due, it
// runs once; its transfer's idempotency key names the run and attempt.
type ScheduleRun struct {
	ID         int64     `gorm:"primaryKey" json:"id"`
	ScheduleID int64     `gorm:"not null;uniqueIndex:schedule_run" json:"-"`
	DueAt      time.Time `gorm:"not null;uniqueIndex:schedule_run" json:"due_at"`
	Period     string    `gorm:"size:8;not null" json:"period"`
	// Attempt is 1, or 2 when a failed run was retried with the next one.
	Attempt int `gorm:"not null" json:"attempt"`
	// Status is pending, done, failed or skipped (already paid, cancelled).
	Status     string `gorm:"size:8;not null;index" json:"status"`
	Reason     string `gorm:"size:32;not null" json:"reason,omitempty"`
	TransferID int64  `gorm:"not null" json:"transfer_id,omitempty"`
	// ClaimedAt is when a node took the run; a pending run whose claim is
	// older than runLease is taken over (its node died).
	ClaimedAt time.Time `gorm:"not null" json:"-"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Run states.
const (
	runPending = "pending"
	runDone    = "done"
	runFailed  = "failed"
	runSkipped = "skipped"
)

const (
	// autoPayHour is when monthly orders run on their day (KST): early,
	// so the due day's reminder already counts them.
	autoPayHour = 6
	// runLease is how long a node owns a claimed run before another
	// node may execute it; far longer than one transfer takes.
	runLease = time.Minute
	// maxSchedules caps one user's active orders.
	maxSchedules = 50
)

// nextMonthly is the first run of a monthly order on day after t. It is
// computed from day each time, never from the previous run, so a 31st
// order runs Jan 31, Feb 28, Mar 31 without drifting.
func nextMonthly(day int, after time.Time) time.Time {
	t := after.In(kst)
	for m := 0; ; m++ {
		first := time.Date(t.Year(), t.Month()+time.Month(m), 1, autoPayHour, 0, 0, 0, kst)
		last := first.AddDate(0, 1, -1).Day()
		run := first.AddDate(0, 0, min(day, last)-1)
		if run.After(after) {
			return run.UTC()
		}
	}
}

// following is the run after the one due at due, or nil when the order
// is over.
func (s *Schedule) following(due time.Time) *time.Time {
	if s.DayOfMonth == 0 {
		return nil
	}
	next := nextMonthly(s.DayOfMonth, due)
	if s.Until != nil && next.After(*s.Until) {
		return nil
	}
	return &next
}

// ScheduleRequest is a new standing order.
type ScheduleRequest struct {
	RoomID     int64  `json:"room_id"`
	Amount     int64  `json:"amount"`
	DayOfMonth int    `json:"day_of_month"`
	At         string `json:"at"`
	Until      string `json:"until"`
}

// parseWhen reads an RFC 3339 time, or a date meaning the end of that day
// in Korea.
func parseWhen(field, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseInLocation("2006-01-02", v, kst); err == nil {
		return d.AddDate(0, 0, 1).Add(-time.Second).UTC(), nil
	}
	return time.Time{}, api.Validation(field + ` must be an RFC 3339 time ("2026-12-01T09:00:00+09:00") or a date ("2027-03-31")`)
}

// CreateSchedule sets up a standing order from the user's wallet into a
// room's fund.
func (f *Fees) CreateSchedule(ctx context.Context, user int64, req ScheduleRequest) (*Schedule, error) {
	if err := f.checkAmount(req.Amount); err != nil {
		return nil, err
	}
	now := f.now()
	s := &Schedule{UserID: user, RoomID: req.RoomID, Amount: req.Amount, DayOfMonth: req.DayOfMonth, State: ScheduleActive}
	switch {
	case (req.DayOfMonth == 0) == (req.At == ""):
		return nil, api.Validation("give either day_of_month (1–31, monthly) or at (one time)")
	case req.At != "":
		at, err := parseWhen("at", req.At)
		if err != nil {
			return nil, err
		}
		if !at.After(now) {
			return nil, api.Validation("at must be in the future")
		}
		s.At, s.NextRun = &at, &at
	case req.DayOfMonth < 1 || req.DayOfMonth > 31:
		return nil, api.Validation("day_of_month must be 1 to 31 (29–31 mean the last day of shorter months)")
	default:
		next := nextMonthly(req.DayOfMonth, now)
		s.NextRun = &next
	}
	if req.Until != "" {
		until, err := parseWhen("until", req.Until)
		if err != nil {
			return nil, err
		}
		if until.Before(*s.NextRun) {
			return nil, api.Validation("until is before the first run")
		}
		s.Until = &until
	}
	if req.RoomID <= 0 {
		return nil, api.Validation("room_id must name a room")
	}
	if _, err := f.requireMember(ctx, req.RoomID, user); err != nil {
		return nil, err
	}
	if _, err := f.fund(ctx, req.RoomID); err != nil {
		return nil, err
	}
	var active int64
	if err := f.db.WithContext(ctx).Model(&Schedule{}).Where("user_id = ? AND state = ?", user, ScheduleActive).Count(&active).Error; err != nil {
		return nil, fmt.Errorf("fees: count schedules of %d: %w", user, err)
	}
	if active >= maxSchedules {
		return nil, api.Conflict("too_many_schedules", fmt.Sprintf("at most %d active schedules; cancel one first", maxSchedules))
	}
	if err := f.db.WithContext(ctx).Create(s).Error; err != nil {
		return nil, fmt.Errorf("fees: create schedule for %d: %w", user, err)
	}
	return s, nil
}

// ScheduleView is a schedule with its latest runs.
type ScheduleView struct {
	Schedule
	Runs []ScheduleRun `json:"runs"`
}

// runsShown is how many recent runs a listed schedule carries.
const runsShown = 12

// Schedules lists the user's standing orders, active and ended, newest
// first, with their recent runs.
func (f *Fees) Schedules(ctx context.Context, user int64, cursor int64, limit int) ([]ScheduleView, error) {
	q := f.db.WithContext(ctx).Where("user_id = ?", user)
	if cursor > 0 {
		q = q.Where("id < ?", cursor)
	}
	var ss []Schedule
	if err := q.Order("id DESC").Limit(limit).Find(&ss).Error; err != nil {
		return nil, fmt.Errorf("fees: schedules of %d: %w", user, err)
	}
	return f.withRuns(ctx, ss)
}

// withRuns attaches each schedule's latest runs.
func (f *Fees) withRuns(ctx context.Context, ss []Schedule) ([]ScheduleView, error) {
	out := make([]ScheduleView, len(ss))
	for i, s := range ss {
		out[i] = ScheduleView{Schedule: s, Runs: []ScheduleRun{}}
		if err := f.db.WithContext(ctx).Where("schedule_id = ?", s.ID).Order("due_at DESC").Limit(runsShown).Find(&out[i].Runs).Error; err != nil {
			return nil, fmt.Errorf("fees: runs of schedule %d: %w", s.ID, err)
		}
	}
	return out, nil
}

// MemberSchedule is a schedule listed for a room, naming its payer.
type MemberSchedule struct {
	ScheduleView
	UserID int64 `json:"user_id"`
}

// RoomSchedules lists the standing orders into a room's fund, newest
// first with their recent runs: every member's to the room's owner and
// admins (a treasurer sees whose auto-pay failed), the caller's own to
// anyone else.
func (f *Fees) RoomSchedules(ctx context.Context, room, user int64, cursor int64, limit int) ([]MemberSchedule, error) {
	role, err := f.requireMember(ctx, room, user)
	if err != nil {
		return nil, err
	}
	q := f.db.WithContext(ctx).Where("room_id = ?", room)
	if role != "owner" && role != "admin" {
		q = q.Where("user_id = ?", user)
	}
	if cursor > 0 {
		q = q.Where("id < ?", cursor)
	}
	var ss []Schedule
	if err := q.Order("id DESC").Limit(limit).Find(&ss).Error; err != nil {
		return nil, fmt.Errorf("fees: schedules into room %d: %w", room, err)
	}
	views, err := f.withRuns(ctx, ss)
	if err != nil {
		return nil, err
	}
	out := make([]MemberSchedule, len(views))
	for i, v := range views {
		out[i] = MemberSchedule{ScheduleView: v, UserID: v.UserID}
	}
	return out, nil
}

// CancelSchedule ends a standing order; only its payer may. Cancelling
// an ended order changes nothing.
func (f *Fees) CancelSchedule(ctx context.Context, user, id int64) error {
	var s Schedule
	err := f.db.WithContext(ctx).Take(&s, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return api.NotFound("schedule")
	}
	if err != nil {
		return fmt.Errorf("fees: read schedule %d: %w", id, err)
	}
	if s.UserID != user {
		return api.Forbidden("only the payer manages a schedule")
	}
	err = f.db.WithContext(ctx).Model(&Schedule{}).Where("id = ? AND state = ?", id, ScheduleActive).
		Updates(map[string]any{"state": ScheduleCancelled, "next_run": nil}).Error
	if err != nil {
		return fmt.Errorf("fees: cancel schedule %d: %w", id, err)
	}
	return nil
}
