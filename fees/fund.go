package fees

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
	"moim/chatlog"
)

var (
	periodRE = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)
	keyRE    = regexp.MustCompile(`^[\x21-\x7e]{1,64}$`)
)

// periodAt is the room's dues period at t in its own rhythm (weekly or
// monthly); monthly when it has no policy.
func (f *Fees) periodAt(db *gorm.DB, room int64, t time.Time) (string, error) {
	var ps []DuesPolicy
	if err := db.Where("room_id = ?", room).Order("id DESC").Find(&ps).Error; err != nil {
		return "", fmt.Errorf("fees: dues of room %d: %w", room, err)
	}
	if p := inForce(ps, t); p != nil {
		return periodOf(p.Period, t), nil
	}
	return periodOf("monthly", t), nil
}

func (f *Fees) checkAmount(amount int64) error {
	if amount <= 0 || amount > f.maxAmount {
		return api.Errorf(400, "invalid_amount", fmt.Sprintf("amount must be a whole number of won from 1 to %d", f.maxAmount))
	}
	return nil
}

// autoKeyPrefix starts the idempotency keys of auto-pay runs; users'
// keys may not, so theirs never collide with a run's (nor with a
// payment's, which start with payKeyPrefix).
const autoKeyPrefix = "auto:"

func checkKey(key string) error {
	if !keyRE.MatchString(key) || strings.HasPrefix(key, autoKeyPrefix) || strings.HasPrefix(key, payKeyPrefix) {
		return api.Errorf(400, "validation", `idempotency_key must be 1 to 64 printable ASCII characters, not starting with "auto:" or "pay:"`)
	}
	return nil
}

func checkMemo(memo string, required bool) (string, error) {
	memo = strings.TrimSpace(memo)
	if n := utf8.RuneCountInString(memo); n > 200 || (required && n == 0) {
		if required {
			return "", api.Validation("memo is required and must be at most 200 characters")
		}
		return "", api.Validation("memo must be at most 200 characters")
	}
	return memo, nil
}

func checkPeriod(p string) (string, error) {
	if p == "" {
		return periodOf("monthly", time.Now()), nil
	}
	if !periodRE.MatchString(p) && !weekRE.MatchString(p) {
		return "", api.Errorf(400, "invalid_period", `period must look like "2026-11" or "2026-W47"`)
	}
	return p, nil
}

// firstErr returns the first non-nil error: user errors are reported one
// at a time.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fund returns a room's fund, 404 when none was opened.
func (f *Fees) fund(ctx context.Context, room int64) (*Account, error) {
	a, err := f.account(ctx, KindFund, room, false)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, api.Errorf(404, "no_fund", "this room has no fund yet; an admin opens one")
	}
	return a, nil
}

// OpenFund opens a room's fund; admins only, once.
func (f *Fees) OpenFund(ctx context.Context, room, user int64, currency string) (*Account, error) {
	if err := f.requireAdmin(ctx, room, user); err != nil {
		return nil, err
	}
	if currency != Currency {
		return nil, api.Validation(`currency must be "KRW"`)
	}
	existing, err := f.account(ctx, KindFund, room, false)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return nil, api.Conflict("fund_exists", "this room already has a fund")
	}
	return f.account(ctx, KindFund, room, true)
}

func (f *Fees) requireMember(ctx context.Context, room, user int64) (string, error) {
	return f.rooms.Role(ctx, room, user)
}

func (f *Fees) requireAdmin(ctx context.Context, room, user int64) error {
	role, err := f.rooms.Role(ctx, room, user)
	if err != nil {
		return err
	}
	if role != "owner" && role != "admin" {
		return api.Forbidden("only the room's owner and admins can do this")
	}
	return nil
}

// Pay moves dues from the member's wallet into the room's fund.
func (f *Fees) Pay(ctx context.Context, room, user, amount int64, period, key string) (*Transfer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return f.pay(ctx, room, user, amount, period, key)
}

// pay is Pay with a key of the system's own (auto-pay runs).
func (f *Fees) pay(ctx context.Context, room, user, amount int64, period, key string) (*Transfer, error) {
	if period == "" {
		p, err := f.periodAt(f.db.WithContext(ctx), room, time.Now())
		if err != nil {
			return nil, err
		}
		period = p
	}
	period, err := checkPeriod(period)
	if err := firstErr(err, f.checkAmount(amount)); err != nil {
		return nil, err
	}
	if _, err := f.requireMember(ctx, room, user); err != nil {
		return nil, err
	}
	fund, err := f.fund(ctx, room)
	if err != nil {
		return nil, err
	}
	wallet, err := f.account(ctx, KindWallet, user, true)
	if err != nil {
		return nil, err
	}
	name, err := f.rooms.DisplayName(ctx, user)
	if err != nil {
		return nil, err
	}
	return f.transfer(ctx, &move{user: user, key: key, kind: TransferDues, from: wallet, to: fund, amount: amount,
		room: room, member: user, period: period,
		announce: func(_, fundAfter int64) (string, map[string]any) {
			return fmt.Sprintf("%s님이 %s 회비 %s원을 냈습니다.", name, period, won(amount)),
				map[string]any{"event": TransferDues, "amount": amount, "currency": Currency, "user": user, "period": period, "balance_after": fundAfter}
		}})
}

// Spend takes money out of the fund for the club's costs; admins only.
// receipt, when not empty, is the id of an upload to the room (a photo
// of the receipt): the ledger line and the fee event link it.
func (f *Fees) Spend(ctx context.Context, room, user, amount int64, memo, receipt, key string) (*Transfer, error) {
	memo, err := checkMemo(memo, true)
	if err := firstErr(err, f.checkAmount(amount), checkKey(key)); err != nil {
		return nil, err
	}
	if err := f.requireAdmin(ctx, room, user); err != nil {
		return nil, err
	}
	var att *chatlog.Attachment
	if receipt != "" {
		if f.receipts == nil {
			return nil, api.Validation("this node keeps no receipts")
		}
		if att, err = f.receipts.Receipt(ctx, receipt, room); err != nil {
			return nil, err
		}
	}
	fund, err := f.fund(ctx, room)
	if err != nil {
		return nil, err
	}
	ext, err := f.account(ctx, KindExternal, 0, true)
	if err != nil {
		return nil, err
	}
	return f.transfer(ctx, &move{user: user, key: key, kind: TransferSpend, from: fund, to: ext, amount: amount,
		room: room, member: user, memo: memo, receipt: receipt,
		announce: func(fundAfter, _ int64) (string, map[string]any) {
			fee := map[string]any{"event": TransferSpend, "amount": amount, "currency": Currency, "user": user, "memo": memo, "balance_after": fundAfter}
			if att != nil {
				fee["receipt"] = att
			}
			return fmt.Sprintf("모임통장에서 %s원 지출: %s", won(amount), memo), fee
		}})
}

// Refund returns dues from the fund to a member's wallet; admins only.
// It reverses a period's payment (default: the latest period the member
// paid) and may return at most what they paid for it, less earlier
// refunds: a fund never pays anyone more than they put in.
func (f *Fees) Refund(ctx context.Context, room, user, member, amount int64, period, memo, key string) (*Transfer, error) {
	memo, err := checkMemo(memo, true)
	if err := firstErr(err, f.checkAmount(amount), checkKey(key)); err != nil {
		return nil, err
	}
	if period != "" {
		if period, err = checkPeriod(period); err != nil {
			return nil, err
		}
	}
	if err := f.requireAdmin(ctx, room, user); err != nil {
		return nil, err
	}
	// A member who has left may still be refunded what they paid: the
	// cap, not membership, decides, so a fund can always be settled.
	name, err := f.rooms.DisplayName(ctx, member)
	if err != nil {
		return nil, api.NotFound("member")
	}
	fund, err := f.fund(ctx, room)
	if err != nil {
		return nil, err
	}
	if period == "" {
		if period, err = f.refundPeriod(ctx, room, user, member, key); err != nil {
			return nil, err
		}
	}
	wallet, err := f.account(ctx, KindWallet, member, true)
	if err != nil {
		return nil, err
	}
	return f.transfer(ctx, &move{user: user, key: key, kind: TransferRefund, from: fund, to: wallet, amount: amount,
		room: room, member: member, period: period, memo: memo,
		guard: func(tx *gorm.DB) (string, error) {
			net, err := netPaid(tx, room, member, period)
			if err != nil || amount <= net {
				return "", err
			}
			return "refund_exceeds_paid", nil
		},
		announce: func(fundAfter, _ int64) (string, map[string]any) {
			return fmt.Sprintf("%s님에게 %s 회비 %s원을 환불했습니다: %s", name, period, won(amount), memo),
				map[string]any{"event": TransferRefund, "amount": amount, "currency": Currency, "user": member, "period": period, "memo": memo, "balance_after": fundAfter}
		}})
}

// refundPeriod is the period a refund naming none reverses: the one its
// key already reversed (a retry must not change its request), else the
// latest the member paid; "" when they never paid, which the cap refuses.
func (f *Fees) refundPeriod(ctx context.Context, room, user, member int64, key string) (string, error) {
	var t Transfer
	err := f.db.WithContext(ctx).Where("user_id = ? AND idem_key = ?", user, key).Take(&t).Error
	if err == nil {
		return t.Period, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("fees: read transfer %q of %d: %w", key, user, err)
	}
	err = f.db.WithContext(ctx).Where("room_id = ? AND member_id = ? AND kind = ? AND refused = ''", room, member, TransferDues).
		Order("period DESC").Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fees: latest dues of %d in room %d: %w", member, room, err)
	}
	return t.Period, nil
}

// netPaid is what a member paid into a room's fund from their wallet for
// a period, less what was refunded for it. It is a locking read: inside a
// MySQL transaction a plain read sees the snapshot taken before the fund's
// lock was granted, missing refunds that committed meanwhile.
func netPaid(db *gorm.DB, room, member int64, period string) (int64, error) {
	var net int64
	err := db.Model(&Transfer{}).Clauses(clause.Locking{Strength: "UPDATE"}).Select("COALESCE(SUM(CASE WHEN kind = ? THEN amount ELSE -amount END), 0)", TransferDues).
		Where("room_id = ? AND member_id = ? AND period = ? AND kind IN ? AND refused = ''", room, member, period, []string{TransferDues, TransferRefund}).
		Scan(&net).Error
	if err != nil {
		return 0, fmt.Errorf("fees: net dues of %d in room %d for %s: %w", member, room, period, err)
	}
	return net, nil
}

// won formats an amount with thousands separators: 1234567 → "1,234,567".
func won(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
