package fees

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
	"moim/sqldb"
)

// DuesReminder marks a period's automatic reminder as sent; the unique
// (room, period) pair makes it go out once however many nodes run.
type DuesReminder struct {
	ID        int64  `gorm:"primaryKey"`
	RoomID    int64  `gorm:"not null;uniqueIndex:reminder_room_period"`
	Period    string `gorm:"size:8;not null;uniqueIndex:reminder_room_period"`
	CreatedAt time.Time
}

const (
	// remindHour is when the due day's automatic reminder goes out (KST);
	// it is sent within a day of that, or not at all.
	remindHour = 9
	// claimBatch bounds the schedules one transaction claims.
	claimBatch = 50
)

// SetClock replaces the scheduler's clock (time.Now by default) so tests
// and simulations can move a node to a due day.
func (f *Fees) SetClock(now func() time.Time) { f.clock.Store(&now) }

func (f *Fees) now() time.Time {
	if c := f.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

// Schedule runs due standing orders and due-day reminders every tick until
// ctx ends. Every node may run it: a schedule is claimed with SKIP LOCKED
// and advanced with a conditional update, each run is a unique row, and
// its transfer carries an idempotency key naming the run, so a run
// executes once across any number of nodes.
func (f *Fees) Schedule(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := f.tick(ctx); err != nil && ctx.Err() == nil {
			log.Warn("fee scheduler; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Fees) tick(ctx context.Context) error {
	for {
		runs, err := f.claimDue(ctx)
		if err != nil {
			return err
		}
		abandoned, err := f.takeAbandoned(ctx)
		if err != nil {
			return err
		}
		runs = append(runs, abandoned...)
		if len(runs) == 0 {
			break
		}
		for _, r := range runs {
			if err := f.execute(ctx, r); err != nil {
				return err
			}
		}
	}
	return f.remindDue(ctx)
}

// claimDue turns due schedules into pending runs and moves each schedule
// to its next run, in one transaction; it returns the runs to execute,
// including a failed run's retry, which rides with the next one.
func (f *Fees) claimDue(ctx context.Context) ([]ScheduleRun, error) {
	now := f.now().UTC()
	var claimed []ScheduleRun
	err := f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		claimed = claimed[:0]
		var due []Schedule
		err := tx.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}).
			Where("state = ? AND next_run <= ?", ScheduleActive, now).Order("next_run").Limit(claimBatch).Find(&due).Error
		if err != nil {
			return err
		}
		for _, s := range due {
			next := s.following(*s.NextRun)
			change := map[string]any{"next_run": next}
			if next == nil {
				change["state"] = ScheduleFinished
			}
			res := tx.Model(&Schedule{}).Where("id = ? AND next_run = ?", s.ID, *s.NextRun).Updates(change)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // another node advanced it first
			}
			var retry []ScheduleRun
			if err := tx.Where("schedule_id = ? AND status = ? AND attempt = 1", s.ID, runFailed).Find(&retry).Error; err != nil {
				return err
			}
			for _, r := range retry {
				r.Status, r.Attempt, r.Reason, r.ClaimedAt = runPending, 2, "", now
				if err := tx.Select("status", "attempt", "reason", "claimed_at").Save(&r).Error; err != nil {
					return err
				}
				claimed = append(claimed, r)
			}
			period, err := f.periodAt(tx, s.RoomID, *s.NextRun)
			if err != nil {
				return err
			}
			run := ScheduleRun{ScheduleID: s.ID, DueAt: *s.NextRun, Period: period, Attempt: 1, Status: runPending, ClaimedAt: now}
			if err := tx.Create(&run).Error; err != nil {
				return err
			}
			claimed = append(claimed, run)
		}
		return nil
	})
	if err != nil {
		if sqldb.IsDeadlock(err) || sqldb.IsDuplicate(err) {
			return nil, nil // lost a race with another node; the next tick looks again
		}
		return nil, fmt.Errorf("fees: claim due schedules: %w", err)
	}
	return claimed, nil
}

// takeAbandoned takes over pending runs whose node stopped before
// finishing them.
func (f *Fees) takeAbandoned(ctx context.Context) ([]ScheduleRun, error) {
	now := f.now().UTC()
	var stale []ScheduleRun
	if err := f.db.WithContext(ctx).Where("status = ? AND claimed_at < ?", runPending, now.Add(-runLease)).Limit(claimBatch).Find(&stale).Error; err != nil {
		return nil, fmt.Errorf("fees: find abandoned runs: %w", err)
	}
	var taken []ScheduleRun
	for _, r := range stale {
		res := f.db.WithContext(ctx).Model(&ScheduleRun{}).Where("id = ? AND status = ? AND claimed_at = ?", r.ID, runPending, r.ClaimedAt).
			Update("claimed_at", now)
		if res.Error != nil {
			return nil, fmt.Errorf("fees: take run %d: %w", r.ID, res.Error)
		}
		if res.RowsAffected == 1 {
			taken = append(taken, r)
		}
	}
	return taken, nil
}

// execute pays one run. Its outcome is written with a conditional update,
// so when two nodes execute the same run (a lease expired) the transfer
// happens once (same idempotency key) and the outcome is announced once.
// An error leaves the run pending for another try.
func (f *Fees) execute(ctx context.Context, r ScheduleRun) error {
	var s Schedule
	if err := f.db.WithContext(ctx).Take(&s, r.ScheduleID).Error; err != nil {
		return fmt.Errorf("fees: schedule %d of run %d: %w", r.ScheduleID, r.ID, err)
	}
	status, reason, transferID := runDone, "", int64(0)
	if s.State == ScheduleCancelled {
		status, reason = runSkipped, "cancelled"
	} else if settled, err := f.settled(ctx, s.RoomID, s.UserID, r.Period); err != nil {
		return err
	} else if settled {
		status, reason = runSkipped, "already_paid"
	} else {
		t, err := f.pay(ctx, s.RoomID, s.UserID, s.Amount, r.Period, fmt.Sprintf("auto:%d:%d", r.ID, r.Attempt))
		var ae *api.Error
		switch {
		case errors.As(err, &ae):
			status, reason = runFailed, ae.Code
		case err != nil:
			return err
		default:
			transferID = t.ID
		}
	}
	retried := status == runFailed && r.Attempt == 1 && s.State == ScheduleActive && s.NextRun != nil
	err := f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&ScheduleRun{}).Where("id = ? AND status = ? AND attempt = ?", r.ID, runPending, r.Attempt).
			Updates(map[string]any{"status": status, "reason": reason, "transfer_id": transferID})
		if res.Error != nil || res.RowsAffected == 0 || status != runFailed {
			return res.Error
		}
		return f.announceFailure(ctx, tx, &s, &r, reason, retried)
	})
	if err != nil {
		return fmt.Errorf("fees: finish run %d: %w", r.ID, err)
	}
	f.metrics.runs.WithLabelValues(status).Inc()
	return nil
}

// settled tells whether a member owes nothing more for a period (paid or
// waived); false when no dues policy applied to it.
func (f *Fees) settled(ctx context.Context, room, member int64, period string) (bool, error) {
	st, err := f.status(ctx, room, period)
	var ae *api.Error
	if errors.As(err, &ae) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, m := range st.Members {
		if m.UserID == member {
			return m.State == "paid" || m.State == "waived", nil
		}
	}
	return false, nil
}

// reasonKo words an auto-pay refusal code for people.
func reasonKo(code string) string {
	switch code {
	case "insufficient_funds":
		return "지갑 잔액이 부족합니다"
	case "no_fund":
		return "모임통장이 없습니다"
	case "not_member", "not_found":
		return "더 이상 이 방의 멤버가 아닙니다"
	}
	return "결제할 수 없습니다"
}

// announceFailure tells the room (and so the payer) that an auto-pay run
// failed and whether it will be tried again.
func (f *Fees) announceFailure(ctx context.Context, tx *gorm.DB, s *Schedule, r *ScheduleRun, reason string, retried bool) error {
	name, err := f.rooms.DisplayName(ctx, s.UserID)
	if err != nil {
		name = fmt.Sprintf("#%d", s.UserID)
	}
	next := "다시 시도하지 않습니다"
	if retried {
		next = "다음 회차에 다시 시도합니다"
	}
	// No amount in the words: nothing moved, and a figure next to a failed
	// payment reads as money gone.
	body := fmt.Sprintf("%s님의 %s 회비 자동이체가 되지 않았습니다(출금 없음). 이유: %s. %s.", name, r.Period, reasonKo(reason), next)
	fee, err := json.Marshal(map[string]any{"event": "autopay_failed", "amount": s.Amount, "currency": Currency, "user": s.UserID,
		"period": r.Period, "reason": reason, "schedule_id": s.ID, "run_id": r.ID, "retry": retried})
	if err != nil {
		return err
	}
	if err := tx.Create(&Outbox{RoomID: s.RoomID, Body: body, Fee: string(fee)}).Error; err != nil {
		return err
	}
	f.nudge()
	return nil
}

// remindDue posts each room's automatic reminder on its due day, once.
func (f *Fees) remindDue(ctx context.Context) error {
	now := f.now()
	var all []DuesPolicy
	if err := f.db.WithContext(ctx).Order("id DESC").Find(&all).Error; err != nil {
		return fmt.Errorf("fees: read dues policies: %w", err)
	}
	byRoom := map[int64][]DuesPolicy{}
	for _, p := range all {
		byRoom[p.RoomID] = append(byRoom[p.RoomID], p)
	}
	// One room's failure must not keep the others' reminders back.
	var errs []error
	for room, ps := range byRoom {
		p := inForce(ps, now)
		if p == nil {
			continue
		}
		period := periodOf(p.Period, now)
		if !remindable(p, period, now) {
			continue
		}
		if err := f.remindOnce(ctx, room, period); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remindable tells whether now is within a day of period's reminder time
// (09:00 KST on the due day) under a policy already in force at that
// time: setting dues must not itself post one.
func remindable(p *DuesPolicy, period string, now time.Time) bool {
	due, err := p.dueDate(period)
	if err != nil {
		return false
	}
	at := due.Add(remindHour * time.Hour)
	return !now.Before(at) && now.Before(at.Add(24*time.Hour)) && !p.CreatedAt.After(at)
}

// remindOnce sends a room's reminder for period unless one was sent.
func (f *Fees) remindOnce(ctx context.Context, room int64, period string) error {
	var n int64
	if err := f.db.WithContext(ctx).Model(&DuesReminder{}).Where("room_id = ? AND period = ?", room, period).Count(&n).Error; err != nil {
		return fmt.Errorf("fees: reminder of room %d: %w", room, err)
	}
	if n > 0 {
		return nil
	}
	st, err := f.status(ctx, room, period)
	if err != nil {
		return err
	}
	ev, unpaid, err := reminder(room, st)
	if err != nil {
		return err
	}
	err = f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&DuesReminder{RoomID: room, Period: period}).Error; err != nil {
			return err
		}
		if len(unpaid) == 0 {
			return nil // nobody to remind
		}
		return tx.Create(ev).Error
	})
	if sqldb.IsDuplicate(err) {
		return nil // another node sent it
	}
	if err != nil {
		return fmt.Errorf("fees: remind room %d: %w", room, err)
	}
	f.nudge()
	return nil
}
