package fees

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/api"
)

// Routes registers the fees routes under r (mounted at /api); all need a
// token. userID reads the authenticated caller.
func (f *Fees) Routes(r fiber.Router, auth fiber.Handler, userID func(*fiber.Ctx) int64) {
	h := &handlers{f: f, user: userID}
	r.Get("/wallet", auth, h.wallet)
	r.Get("/wallet/transactions", auth, h.walletLines)
	r.Post("/wallet/deposit", auth, h.deposit)
	r.Post("/wallet/topups", auth, h.topUp)
	r.Post("/wallet/topups/confirm", auth, h.confirmTopUp)
	r.Post("/wallet/topups/cancel", auth, h.cancelTopUp)
	r.Post("/wallet/withdrawals", auth, h.withdraw)
	r.Post("/wallet/transfers", auth, h.send)
	r.Put("/wallet/pin", auth, h.setPIN)
	// The provider calls this without a token; what it says is checked
	// with the provider before anything is credited.
	r.Post("/payments/webhook", h.webhook)
	r.Post("/rooms/:id/fund", auth, h.openFund)
	r.Get("/rooms/:id/fund", auth, h.fund)
	r.Post("/rooms/:id/fund/pay", auth, h.pay)
	r.Post("/rooms/:id/fund/spend", auth, h.spend)
	r.Post("/rooms/:id/fund/refund", auth, h.refund)
	r.Get("/rooms/:id/fund/ledger", auth, h.ledger)
	r.Put("/rooms/:id/dues", auth, h.setDues)
	r.Get("/rooms/:id/dues", auth, h.dues)
	r.Get("/rooms/:id/dues/status", auth, h.status)
	r.Post("/rooms/:id/dues/records", auth, h.record(false))
	r.Post("/rooms/:id/dues/waivers", auth, h.record(true))
	r.Get("/rooms/:id/dues/audit", auth, h.audit)
	r.Post("/rooms/:id/dues/remind", auth, h.remind)
	r.Post("/schedules", auth, h.createSchedule)
	r.Get("/schedules", auth, h.schedules)
	r.Delete("/schedules/:id", auth, h.cancelSchedule)
	r.Get("/rooms/:id/schedules", auth, h.roomSchedules)
}

func (h *handlers) createSchedule(c *fiber.Ctx) error {
	if err := h.pin(c); err != nil {
		return err
	}
	var req ScheduleRequest
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	s, err := h.f.CreateSchedule(c.UserContext(), h.user(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(ScheduleView{Schedule: *s, Runs: []ScheduleRun{}})
}

func (h *handlers) schedules(c *fiber.Ctx) error {
	limit, cursor, err := api.Page(c, 20, 100)
	if err != nil {
		return err
	}
	ss, err := h.f.Schedules(c.UserContext(), h.user(c), cursor, limit+1)
	if err != nil {
		return err
	}
	ss, next := trimPage(ss, limit, func(s ScheduleView) int64 { return s.ID })
	return c.JSON(fiber.Map{"schedules": ss, "next_cursor": next})
}

// trimPage cuts a list read with limit+1 rows to limit and returns the
// cursor of the next page, empty on the last.
func trimPage[T any](items []T, limit int, id func(T) int64) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, strconv.FormatInt(id(items[limit-1]), 10)
}

func (h *handlers) roomSchedules(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	limit, cursor, err := api.Page(c, 20, 100)
	if err != nil {
		return err
	}
	ss, err := h.f.RoomSchedules(c.UserContext(), room, h.user(c), cursor, limit+1)
	if err != nil {
		return err
	}
	ss, next := trimPage(ss, limit, func(s MemberSchedule) int64 { return s.ID })
	return c.JSON(fiber.Map{"schedules": ss, "next_cursor": next})
}

func (h *handlers) cancelSchedule(c *fiber.Ctx) error {
	id, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	if err := h.f.CancelSchedule(c.UserContext(), h.user(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// record serves manual payments and, with waive, waivers.
func (h *handlers) record(waive bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		room, err := api.ParamID(c, "id")
		if err != nil {
			return err
		}
		var req struct {
			UserID int64  `json:"user_id"`
			Period string `json:"period"`
			Amount int64  `json:"amount"`
			Memo   string `json:"memo"`
		}
		if err := api.Decode(c, &req); err != nil {
			return err
		}
		if req.UserID <= 0 {
			return api.Validation("user_id must name a member")
		}
		if waive && req.Amount != 0 {
			return api.Validation("a waiver has no amount")
		}
		r, err := h.f.Record(c.UserContext(), room, h.user(c), req.UserID, req.Period, req.Amount, waive, req.Memo)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(r)
	}
}

func (h *handlers) audit(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	a, err := h.f.Audit(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"audit": a})
}

func (h *handlers) remind(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	unpaid, err := h.f.Remind(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"unpaid": unpaid})
}

func (h *handlers) setDues(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		Amount int64  `json:"amount"`
		Period string `json:"period"`
		DueDay int    `json:"due_day"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	p, err := h.f.SetDues(c.UserContext(), room, h.user(c), req.Amount, req.Period, req.DueDay)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (h *handlers) dues(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	d, err := h.f.DuesOf(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (h *handlers) status(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	s, err := h.f.StatusOf(c.UserContext(), room, h.user(c), c.Query("period"))
	if err != nil {
		return err
	}
	return c.JSON(s)
}

type handlers struct {
	f    *Fees
	user func(*fiber.Ctx) int64
}

// transferView is a transfer as the API returns it.
type transferView struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Amount   int64  `json:"amount"`
	RoomID   int64  `json:"room_id,omitempty"`
	MemberID int64  `json:"member_id,omitempty"`
	Period   string `json:"period,omitempty"`
	Memo     string `json:"memo,omitempty"`
	// ReceiptAttachmentID is a spend's receipt upload.
	ReceiptAttachmentID string    `json:"receipt_attachment_id,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
}

// done answers a transfer: 201 when it happened now, 200 for a repeat.
func done(c *fiber.Ctx, t *Transfer, err error) error {
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if t.Replayed {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(transferView{ID: t.ID, Kind: t.Kind, Amount: t.Amount, RoomID: t.RoomID,
		MemberID: t.MemberID, Period: t.Period, Memo: t.Memo, ReceiptAttachmentID: t.ReceiptID, CreatedAt: t.CreatedAt})
}

type moneyReq struct {
	Amount         int64  `json:"amount"`
	IdempotencyKey string `json:"idempotency_key"`
	Period         string `json:"period"`
	Memo           string `json:"memo"`
	UserID         int64  `json:"user_id"`
	// ReceiptAttachmentID names a spend's receipt upload.
	ReceiptAttachmentID string `json:"receipt_attachment_id"`
}

func (h *handlers) wallet(c *fiber.Ctx) error {
	w, _, err := h.f.WalletOf(c.UserContext(), h.user(c))
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (h *handlers) walletLines(c *fiber.Ctx) error {
	_, a, err := h.f.WalletOf(c.UserContext(), h.user(c))
	if err != nil {
		return err
	}
	return h.page(c, a.ID, "transactions")
}

// deposit answers the old free-money endpoint: money enters a wallet only
// through a payment the provider confirmed.
func (h *handlers) deposit(*fiber.Ctx) error {
	return api.Errorf(fiber.StatusGone, "deposit_removed", "deposits no longer add money; top up through POST /api/wallet/topups")
}

// paid answers a payment: 201 when it started now, 200 for a repeat.
func paid(c *fiber.Ctx, p *Payment, err error) error {
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if p.Replayed {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(viewPayment(p))
}

type paymentReq struct {
	Amount         int64  `json:"amount"`
	IdempotencyKey string `json:"idempotency_key"`
}

func (h *handlers) topUp(c *fiber.Ctx) error {
	var req paymentReq
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	p, err := h.f.TopUp(c.UserContext(), h.user(c), req.Amount, req.IdempotencyKey)
	return paid(c, p, err)
}

func (h *handlers) withdraw(c *fiber.Ctx) error {
	if err := h.pin(c); err != nil {
		return err
	}
	var req paymentReq
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	p, err := h.f.Withdraw(c.UserContext(), h.user(c), req.Amount, req.IdempotencyKey)
	return paid(c, p, err)
}

// pin lets a request that moves the caller's money go ahead if the
// wallet has no PIN or the request carries it.
func (h *handlers) pin(c *fiber.Ctx) error {
	err := h.f.CheckPIN(c.UserContext(), h.user(c), c.Get(PINHeader))
	var le *LockedError
	if errors.As(err, &le) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(le.RetryAfter))
	}
	return err
}

func (h *handlers) setPIN(c *fiber.Ctx) error {
	var req struct {
		PIN        string `json:"pin"`
		CurrentPIN string `json:"current_pin"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	err := h.f.SetPIN(c.UserContext(), h.user(c), req.PIN, req.CurrentPIN)
	var le *LockedError
	if errors.As(err, &le) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(le.RetryAfter))
	}
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *handlers) send(c *fiber.Ctx) error {
	if err := h.pin(c); err != nil {
		return err
	}
	var req struct {
		ToUserID       int64  `json:"to_user_id"`
		Amount         int64  `json:"amount"`
		Memo           string `json:"memo"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if req.ToUserID <= 0 {
		return api.Validation("to_user_id must name a user")
	}
	t, err := h.f.Send(c.UserContext(), h.user(c), req.ToUserID, req.Amount, req.Memo, req.IdempotencyKey)
	return done(c, t, err)
}

// confirmTopUp takes what the provider's checkout handed the browser
// (Toss's successUrl query: paymentKey, orderId, amount).
func (h *handlers) confirmTopUp(c *fiber.Ctx) error {
	var req struct {
		PaymentKey string `json:"payment_key"`
		OrderID    string `json:"order_id"`
		Amount     int64  `json:"amount"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	p, err := h.f.ConfirmTopUp(c.UserContext(), h.user(c), req.OrderID, req.PaymentKey, req.Amount)
	if err != nil {
		return err
	}
	return c.JSON(viewPayment(p))
}

// cancelTopUp takes what the provider's checkout handed the browser when
// it failed or was cancelled (Toss's failUrl query: code, message,
// orderId; or the SDK's rejection).
func (h *handlers) cancelTopUp(c *fiber.Ctx) error {
	var req struct {
		OrderID string `json:"order_id"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	var parts []string
	for _, s := range []string{req.Code, req.Message} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	why := strings.Join(parts, ": ")
	p, err := h.f.CancelTopUp(c.UserContext(), h.user(c), req.OrderID, why)
	if err != nil {
		return err
	}
	return c.JSON(viewPayment(p))
}

// webhook takes Toss's payment notification ({"eventType":…,"data":{…}}).
func (h *handlers) webhook(c *fiber.Ctx) error {
	var req struct {
		EventType string `json:"eventType"`
		Data      struct {
			PaymentKey string `json:"paymentKey"`
		} `json:"data"`
	}
	// Providers add fields over time; only the payment key matters here.
	if err := json.Unmarshal(c.Body(), &req); err != nil || req.Data.PaymentKey == "" {
		return api.BadRequest("expected a payment notification naming data.paymentKey")
	}
	if err := h.f.Notified(c.UserContext(), req.Data.PaymentKey); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusOK)
}

func (h *handlers) openFund(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	var req struct {
		Currency string `json:"currency"`
	}
	if err := api.Decode(c, &req); err != nil {
		return err
	}
	if _, err := h.f.OpenFund(c.UserContext(), room, h.user(c), req.Currency); err != nil {
		return err
	}
	fund, _, err := h.f.FundOf(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fund)
}

func (h *handlers) fund(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	fund, _, err := h.f.FundOf(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	return c.JSON(fund)
}

// roomMoney reads the room id and a money request body.
func roomMoney(c *fiber.Ctx) (int64, *moneyReq, error) {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return 0, nil, err
	}
	var req moneyReq
	if err := api.Decode(c, &req); err != nil {
		return 0, nil, err
	}
	return room, &req, nil
}

func (h *handlers) pay(c *fiber.Ctx) error {
	room, req, err := roomMoney(c)
	if err != nil {
		return err
	}
	if err := h.pin(c); err != nil {
		return err
	}
	t, err := h.f.Pay(c.UserContext(), room, h.user(c), req.Amount, req.Period, req.IdempotencyKey)
	return done(c, t, err)
}

func (h *handlers) spend(c *fiber.Ctx) error {
	room, req, err := roomMoney(c)
	if err != nil {
		return err
	}
	t, err := h.f.Spend(c.UserContext(), room, h.user(c), req.Amount, req.Memo, req.ReceiptAttachmentID, req.IdempotencyKey)
	return done(c, t, err)
}

func (h *handlers) refund(c *fiber.Ctx) error {
	room, req, err := roomMoney(c)
	if err != nil {
		return err
	}
	if req.UserID <= 0 {
		return api.Validation("user_id must name the member to refund")
	}
	t, err := h.f.Refund(c.UserContext(), room, h.user(c), req.UserID, req.Amount, req.Period, req.Memo, req.IdempotencyKey)
	return done(c, t, err)
}

func (h *handlers) ledger(c *fiber.Ctx) error {
	room, err := api.ParamID(c, "id")
	if err != nil {
		return err
	}
	_, a, err := h.f.FundOf(c.UserContext(), room, h.user(c))
	if err != nil {
		return err
	}
	if c.Query("format") == "csv" {
		return h.csv(c, a.ID, room)
	}
	limit, cursor, err := api.Page(c, 50, 200)
	if err != nil {
		return err
	}
	lines, next, err := h.f.page(c.UserContext(), a.ID, cursor, limit)
	if err != nil {
		return err
	}
	// Off-wallet lines are few (one per cash record or waiver) and not in
	// the balance; they come whole with the first page.
	off := []Line{}
	if cursor == 0 {
		if off, err = h.f.offWallet(c.UserContext(), room); err != nil {
			return err
		}
	}
	return c.JSON(fiber.Map{"entries": lines, "off_wallet": off, "next_cursor": next})
}

// page answers {"<field>":[…],"next_cursor":"…"} for an account.
func (h *handlers) page(c *fiber.Ctx, account int64, field string) error {
	limit, cursor, err := api.Page(c, 50, 200)
	if err != nil {
		return err
	}
	lines, next, err := h.f.page(c.UserContext(), account, cursor, limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{field: lines, "next_cursor": next})
}

// csv exports the whole ledger; the BOM makes spreadsheets read Korean
// text as UTF-8.
func (h *handlers) csv(c *fiber.Ctx, account, room int64) error {
	lines, err := h.f.lines(c.UserContext(), account, 0, 0)
	if err != nil {
		return err
	}
	off, err := h.f.offWallet(c.UserContext(), room)
	if err != nil {
		return err
	}
	// One sheet in time order (newest first), off-wallet lines marked.
	lines = append(lines, off...)
	slices.SortStableFunc(lines, func(a, b Line) int { return b.At.Compare(a.At) })
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"time", "kind", "member", "amount", "balance_after", "period", "memo", "note", "receipt"})
	for _, l := range lines {
		note, after := "", strconv.FormatInt(l.BalanceAfter, 10)
		switch {
		case l.OffWallet:
			note, after = "off-wallet", ""
		case l.Test:
			note = "test money"
		}
		_ = w.Write([]string{l.At.In(kst).Format(time.RFC3339), l.Kind, cell(l.Member), strconv.FormatInt(l.Amount, 10),
			after, l.Period, cell(l.Memo), note, receiptPath(l.ReceiptID)})
	}
	w.Flush()
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="fund-`+strconv.FormatInt(room, 10)+`-ledger.csv"`)
	return c.Send(buf.Bytes())
}

// receiptPath is where a member fetches a line's receipt ("" for none).
func receiptPath(id string) string {
	if id == "" {
		return ""
	}
	return "/api/attachments/" + id
}

// cell defuses a user-written CSV cell a spreadsheet would run as a
// formula (=HYPERLINK(…) in a memo or a display name): one that starts
// with =, +, -, @, tab or CR, unless it is a plain number, gets a leading
// ' (OWASP's rule for CSV injection).
func cell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}
