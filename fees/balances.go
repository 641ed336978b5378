package fees

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Line is one ledger entry as users read it.
type Line struct {
	ID           int64     `json:"id"`
	At           time.Time `json:"at"`
	Kind         string    `json:"kind"`
	MemberID     int64     `json:"member_id,omitempty"`
	Member       string    `json:"member,omitempty"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balance_after"`
	Period       string    `json:"period,omitempty"`
	Memo         string    `json:"memo,omitempty"`
	// ReceiptID is a spend's receipt upload, fetched at
	// /api/attachments/{id} by members.
	ReceiptID string `json:"receipt_attachment_id,omitempty"`
	// Test marks test money (a sandbox top-up and what it moved).
	Test bool `json:"test,omitempty"`
	// OffWallet marks dues settled outside Moim (kind "record", cash or a
	// bank transfer) or waived (kind "waiver"): counted in the dues
	// status, never in the balance, so BalanceAfter is 0.
	OffWallet bool `json:"off_wallet,omitempty"`
}

// offWallet reads a room's cash records and waivers as ledger lines,
// newest first.
func (f *Fees) offWallet(ctx context.Context, room int64) ([]Line, error) {
	var rs []DuesRecord
	err := f.db.WithContext(ctx).Where("room_id = ?", room).Order("id DESC").Find(&rs).Error
	if err != nil {
		return nil, fmt.Errorf("fees: off-wallet records of room %d: %w", room, err)
	}
	ids := make([]int64, len(rs))
	for i, r := range rs {
		ids[i] = r.UserID
	}
	names, err := f.names(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("fees: off-wallet records of room %d: %w", room, err)
	}
	out := make([]Line, len(rs))
	for i, r := range rs {
		kind := "record"
		if r.Waived {
			kind = "waiver"
		}
		out[i] = Line{ID: r.ID, At: r.CreatedAt, Kind: kind, MemberID: r.UserID, Member: names[r.UserID], Amount: r.Amount,
			Period: r.Period, Memo: r.Memo, OffWallet: true}
	}
	return out, nil
}

// lines reads an account's entries, newest first, after cursor (an entry
// id; 0 for the newest). limit 0 means all (CSV export).
func (f *Fees) lines(ctx context.Context, account, cursor int64, limit int) ([]Line, error) {
	q := f.db.WithContext(ctx).Table("entries").
		Select("entries.id, entries.created_at AS at, transfers.kind, transfers.member_id, entries.amount, entries.balance_after, transfers.period, transfers.memo, transfers.receipt_id, transfers.test").
		Joins("JOIN transfers ON transfers.id = entries.transfer_id").
		Where("entries.account_id = ?", account)
	if cursor > 0 {
		q = q.Where("entries.id < ?", cursor)
	}
	if limit > 0 {
		q = q.Limit(limit)
	}
	out := []Line{}
	if err := q.Order("entries.id DESC").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("fees: ledger of account %d: %w", account, err)
	}
	ids := make([]int64, 0, len(out))
	for _, l := range out {
		if l.MemberID != 0 {
			ids = append(ids, l.MemberID)
		}
	}
	names, err := f.names(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("fees: ledger of account %d: %w", account, err)
	}
	for i := range out {
		out[i].Member = names[out[i].MemberID]
	}
	return out, nil
}

// names maps the users among ids who exist to their display names (none
// asked for when ids is empty).
func (f *Fees) names(ctx context.Context, ids []int64) (map[int64]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return f.rooms.DisplayNames(ctx, ids)
}

// page reads up to limit lines after cursor and the cursor of the next
// page ("" at the end).
func (f *Fees) page(ctx context.Context, account, cursor int64, limit int) ([]Line, string, error) {
	lines, err := f.lines(ctx, account, cursor, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(lines) > limit {
		lines = lines[:limit]
		next = strconv.FormatInt(lines[limit-1].ID, 10)
	}
	return lines, next, nil
}

// Wallet is a user's balance.
type Wallet struct {
	Balance int64 `json:"balance"`
	// Held is money on its way out in pending withdrawals: no longer in
	// Balance, back in it if the payout fails.
	Held     int64  `json:"held"`
	Currency string `json:"currency"`
	// Provider is the payment provider top-ups go through ("" when none)
	// and TestMoney whether its money is only test money.
	Provider  string `json:"provider"`
	TestMoney bool   `json:"test_money"`
	// Withdrawals tells whether the provider can pay money out at all.
	Withdrawals bool `json:"withdrawals"`
	// HasPIN tells the client to ask for the PIN before moving money.
	HasPIN bool `json:"has_pin"`
	// PendingTopUps are top-ups waiting for the provider's checkout (never
	// null), so a client can show them and end one the user abandoned.
	PendingTopUps []PendingTopUp `json:"pending_topups"`
}

// WalletOf returns the user's wallet, opening it on first use.
func (f *Fees) WalletOf(ctx context.Context, user int64) (*Wallet, *Account, error) {
	a, err := f.account(ctx, KindWallet, user, true)
	if err != nil {
		return nil, nil, err
	}
	hold, err := f.account(ctx, KindHold, user, false)
	if err != nil {
		return nil, nil, err
	}
	w := &Wallet{Balance: a.Balance, Currency: a.Currency}
	if hold != nil {
		w.Held = hold.Balance
	}
	if f.provider != nil {
		w.Provider, w.TestMoney, w.Withdrawals = f.provider.Name(), f.provider.Test(), f.provider.PaysOut()
	}
	if w.HasPIN, err = f.HasPIN(ctx, user); err != nil {
		return nil, nil, err
	}
	if w.PendingTopUps, err = f.PendingTopUps(ctx, user); err != nil {
		return nil, nil, err
	}
	return w, a, nil
}

// Fund is a room's fund as members see it.
type Fund struct {
	RoomID   int64  `json:"room_id"`
	Balance  int64  `json:"balance"`
	Currency string `json:"currency"`
	TotalIn  int64  `json:"total_in"`
	TotalOut int64  `json:"total_out"`
	// Period is the current dues period and Paid what each member has
	// paid into the fund for it.
	Period string       `json:"period"`
	Paid   []MemberPaid `json:"paid"`
}

// MemberPaid is one member's dues paid into the fund for a period.
type MemberPaid struct {
	UserID int64 `json:"user_id"`
	Paid   int64 `json:"paid"`
}

// FundOf returns a room's fund to a member.
func (f *Fees) FundOf(ctx context.Context, room, user int64) (*Fund, *Account, error) {
	if _, err := f.requireMember(ctx, room, user); err != nil {
		return nil, nil, err
	}
	a, err := f.fund(ctx, room)
	if err != nil {
		return nil, nil, err
	}
	var sums struct{ In, Out int64 }
	err = f.db.WithContext(ctx).Table("entries").
		Select("COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS `in`, COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS `out`").
		Where("account_id = ?", a.ID).Scan(&sums).Error
	if err != nil {
		return nil, nil, fmt.Errorf("fees: totals of fund %d: %w", room, err)
	}
	period, err := f.periodAt(f.db.WithContext(ctx), room, time.Now())
	if err != nil {
		return nil, nil, err
	}
	paid, err := f.paidBy(ctx, room, period)
	if err != nil {
		return nil, nil, err
	}
	fund := &Fund{RoomID: room, Balance: a.Balance, Currency: a.Currency, TotalIn: sums.In, TotalOut: sums.Out, Period: period, Paid: []MemberPaid{}}
	for id, amount := range paid {
		fund.Paid = append(fund.Paid, MemberPaid{UserID: id, Paid: amount})
	}
	slices.SortFunc(fund.Paid, func(a, b MemberPaid) int { return cmp.Compare(a.UserID, b.UserID) })
	return fund, a, nil
}
