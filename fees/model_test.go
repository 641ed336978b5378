package fees_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"moim/internal/testkit"
	"moim/teststack"
)

// The model check drives a seeded random money workload through the API
// while an in-memory model predicts every reply and every balance. Each
// round's requests run concurrently; the generator keeps every outcome
// determined whatever the interleaving: an account is debited by at most
// one new request per round, and a debit either fits the balance before
// the round (so it succeeds) or exceeds it plus every credit the round
// could bring (so it is refused). It covers sandbox top-ups, dues, spends,
// capped refunds, withdrawals, member transfers, retries and reused keys,
// then a wallet PIN lockout, and ends by reconciling the books. Rerun a
// failure with MOIM_MODEL_SEED.

// modelOp is one request and the reply the model predicts.
type modelOp struct {
	who    *testkit.Client
	path   string
	body   map[string]any
	desc   string
	status []int // acceptable statuses (a concurrent duplicate pair may answer 201 or 200)
	code   string
	// first is the original request this one repeats (same key), if any.
	first *modelOp
	// filled in when the request runs
	gotStatus int
	gotID     int64
	gotCode   string
}

// modelKey is an idempotency key in its user's scope.
type modelKey struct {
	user int64
	key  string
}

func TestModelCheckMoney(t *testing.T) {
	rng, fail := testkit.Seeded(t, "MOIM_MODEL_SEED")

	n := serve(t)
	admin := n.User(t, "Treasurer")
	members := []*testkit.Client{admin}
	for i := range 4 {
		members = append(members, n.User(t, fmt.Sprintf("Member%d", i)))
	}
	var ids []int64
	for _, m := range members[1:] {
		ids = append(ids, m.ID)
	}
	rooms := make([]int64, 2)
	for i := range rooms {
		rooms[i] = n.CreateRoom(admin, map[string]any{"name": fmt.Sprintf("Club %d", i), "member_ids": ids}).ID
		admin.Must(201, "POST", fmt.Sprintf("/api/rooms/%d/fund", rooms[i]), map[string]any{"currency": "KRW"}, nil)
		admin.Must(200, "PUT", fmt.Sprintf("/api/rooms/%d/dues", rooms[i]), map[string]any{"amount": 30000, "period": "monthly", "due_day": 28}, nil)
	}

	wallet := map[int64]int64{} // user → balance
	fund := map[int64]int64{}   // room → balance
	// paid is each member's dues in a room's fund, net of refunds: the
	// refund cap. Payments use the current period, and refunds default
	// to the latest paid one, so one figure per (room, member) suffices.
	paid := map[[2]int64]int64{}
	done := map[modelKey]*modelOp{}
	var history []*modelOp
	outcomes := map[string]int{}
	keyN := map[int64]int{}
	newKey := func(c *testkit.Client) string {
		keyN[c.ID]++
		return fmt.Sprintf("k%d", keyN[c.ID]) // the same strings in every user's scope
	}

	const rounds = 40
	for round := range rounds {
		var ops []*modelOp
		debited := map[string]bool{}
		credits := map[string]int64{}
		// A member is paid into a room or refunded from it in one round,
		// not both, so a refund's cap is fixed while the round runs.
		capTouched := map[[2]int64]bool{}
		// Requests that move money; their debits are resolved below.
		type pending struct {
			op     *modelOp
			debit  string
			credit string
			amount *int64
			// decided is set for refunds, whose outcome the generator
			// fixes up front: "" (done) or the refusal's code.
			decided *string
			capKey  [2]int64
		}
		var moves []pending
		for range 1 + rng.IntN(6) {
			c := members[rng.IntN(len(members))]
			room := rooms[rng.IntN(len(rooms))]
			amount := int64(1 + rng.IntN(30)*1000)
			switch k := rng.IntN(10); {
			case k < 3:
				credits["w"+fmt.Sprint(c.ID)] += amount
				op := &modelOp{who: c, path: "/api/wallet/topups", desc: "deposit", body: map[string]any{"amount": amount, "idempotency_key": newKey(c)}}
				moves = append(moves, pending{op: op, credit: "w" + fmt.Sprint(c.ID), amount: &amount})
			case k < 6:
				if debited["w"+fmt.Sprint(c.ID)] || capTouched[[2]int64{room, c.ID}] {
					continue
				}
				debited["w"+fmt.Sprint(c.ID)] = true
				capTouched[[2]int64{room, c.ID}] = true
				credits["f"+fmt.Sprint(room)] += amount
				op := &modelOp{who: c, path: fmt.Sprintf("/api/rooms/%d/fund/pay", room), desc: "pay", body: map[string]any{"amount": amount, "idempotency_key": newKey(c)}}
				moves = append(moves, pending{op: op, debit: "w" + fmt.Sprint(c.ID), credit: "f" + fmt.Sprint(room), amount: &amount, capKey: [2]int64{room, c.ID}})
			case k < 7 && rng.IntN(2) == 0:
				// A withdrawal: held, then paid out by the sandbox.
				if debited["w"+fmt.Sprint(c.ID)] {
					continue
				}
				debited["w"+fmt.Sprint(c.ID)] = true
				op := &modelOp{who: c, path: "/api/wallet/withdrawals", desc: "withdraw", body: map[string]any{"amount": amount, "idempotency_key": newKey(c)}}
				moves = append(moves, pending{op: op, debit: "w" + fmt.Sprint(c.ID), amount: &amount})
			case k < 7:
				if debited["f"+fmt.Sprint(room)] {
					continue
				}
				debited["f"+fmt.Sprint(room)] = true
				op := &modelOp{who: admin, path: fmt.Sprintf("/api/rooms/%d/fund/spend", room), desc: "spend", body: map[string]any{"amount": amount, "memo": "간식 snacks", "idempotency_key": newKey(admin)}}
				moves = append(moves, pending{op: op, debit: "f" + fmt.Sprint(room), amount: &amount})
			case k < 8:
				ck := [2]int64{room, c.ID}
				if debited["f"+fmt.Sprint(room)] || capTouched[ck] {
					continue
				}
				debited["f"+fmt.Sprint(room)] = true
				capTouched[ck] = true
				// Within both the cap and the fund's balance before the
				// round (only credits can come to it meanwhile): done. Over
				// the cap: refused whatever the fund holds. The owner has
				// paid nothing, so her refunds are always over.
				outcome := ""
				if limit := min(paid[ck], fund[room]); limit > 0 && rng.IntN(3) > 0 {
					amount = 1 + rng.Int64N(limit)
					credits["w"+fmt.Sprint(c.ID)] += amount
				} else {
					amount = paid[ck] + 1 + rng.Int64N(1000)
					outcome = "refund_exceeds_paid"
				}
				op := &modelOp{who: admin, path: fmt.Sprintf("/api/rooms/%d/fund/refund", room), desc: "refund", body: map[string]any{"user_id": c.ID, "amount": amount, "memo": "환불 refund", "idempotency_key": newKey(admin)}}
				moves = append(moves, pending{op: op, debit: "f" + fmt.Sprint(room), credit: "w" + fmt.Sprint(c.ID), amount: &amount, decided: &outcome, capKey: ck})
			case k < 9 && rng.IntN(2) == 0:
				// 송금 to another member: a wallet-to-wallet move.
				d := members[rng.IntN(len(members))]
				if d == c || debited["w"+fmt.Sprint(c.ID)] {
					continue
				}
				debited["w"+fmt.Sprint(c.ID)] = true
				credits["w"+fmt.Sprint(d.ID)] += amount
				op := &modelOp{who: c, path: "/api/wallet/transfers", desc: "transfer", body: map[string]any{"to_user_id": d.ID, "amount": amount, "memo": "밥값", "idempotency_key": newKey(c)}}
				moves = append(moves, pending{op: op, debit: "w" + fmt.Sprint(c.ID), credit: "w" + fmt.Sprint(d.ID), amount: &amount})
			case k < 9 && len(history) > 0:
				// A late retry with the same key and body: the first answer again.
				first := history[rng.IntN(len(history))]
				op := &modelOp{who: first.who, path: first.path, body: first.body, desc: "retry " + first.desc, first: first}
				ops = append(ops, op)
				if rng.IntN(3) == 0 { // and a changed body under that key
					body := map[string]any{}
					for k, v := range first.body {
						body[k] = v
					}
					body["amount"] = first.body["amount"].(int64) + 1
					ops = append(ops, &modelOp{who: first.who, path: first.path, body: body, desc: "reuse " + first.desc, status: []int{409}, code: "idempotency_conflict"})
				}
			default:
				bad := []int64{0, -5, 100_000_001}[rng.IntN(3)]
				ops = append(ops, &modelOp{who: c, path: "/api/wallet/topups", desc: "bad deposit", body: map[string]any{"amount": bad, "idempotency_key": newKey(c)}, status: []int{400}, code: "invalid_amount"})
			}
		}
		balance := func(acct string) int64 {
			id, _ := strconv.ParseInt(acct[1:], 10, 64)
			if acct[0] == 'w' {
				return wallet[id]
			}
			return fund[id]
		}
		// Decide each debit in turn. A refused move credits nothing, so
		// its credit leaves the round's total; a debit fits when it is at
		// most the balance before the round. Decisions only ever lower
		// the credits still to come, so an earlier decision stays true.
		for _, m := range moves {
			if m.debit == "" || m.decided != nil {
				continue
			}
			lo, hi := balance(m.debit), balance(m.debit)+credits[m.debit]
			switch {
			case *m.amount <= lo:
			case *m.amount > hi:
				credits[m.credit] -= *m.amount
			case lo > 0 && rng.IntN(2) == 0:
				a := 1 + rng.Int64N(lo)
				credits[m.credit] += a - *m.amount
				*m.amount = a
			default:
				credits[m.credit] -= *m.amount
				*m.amount = hi + 1 + rng.Int64N(1000)
			}
			m.op.body["amount"] = *m.amount
		}
		for _, m := range moves {
			ok := m.debit == "" || *m.amount <= balance(m.debit)
			switch {
			case m.decided != nil && *m.decided != "":
				ok = false
				m.op.status, m.op.code = []int{409}, *m.decided
			case ok:
				m.op.status = []int{201}
			default:
				m.op.status, m.op.code = []int{409}, "insufficient_funds"
			}
			ops = append(ops, m.op)
			if rng.IntN(5) == 0 { // the same request twice at once
				dup := &modelOp{who: m.op.who, path: m.op.path, body: m.op.body, desc: "duplicate " + m.op.desc, status: m.op.status, code: m.op.code}
				if ok {
					m.op.status, dup.status = []int{200, 201}, []int{200, 201}
				}
				ops = append(ops, dup)
			}
		}
		// Apply the round to the model: successful moves only.
		for _, m := range moves {
			if m.op.code != "" {
				continue
			}
			add := func(acct string, d int64) {
				id, _ := strconv.ParseInt(acct[1:], 10, 64)
				if acct[0] == 'w' {
					wallet[id] += d
				} else {
					fund[id] += d
				}
			}
			if m.debit != "" {
				add(m.debit, -*m.amount)
			}
			if m.credit != "" {
				add(m.credit, *m.amount)
			}
			switch {
			case strings.HasSuffix(m.op.path, "/fund/pay"):
				paid[m.capKey] += *m.amount
			case m.decided != nil:
				paid[m.capKey] -= *m.amount
			}
		}

		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Go(func() {
				status, raw := op.who.Raw("POST", op.path, op.body)
				var reply struct {
					ID    int64 `json:"id"`
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				_ = json.Unmarshal(raw, &reply)
				op.gotStatus, op.gotID, op.gotCode = status, reply.ID, reply.Error.Code
			})
		}
		wg.Wait()

		ids := map[modelKey]int64{}
		for _, op := range ops {
			where := fmt.Sprintf("round %d: %s by user %d %v", round, op.desc, op.who.ID, op.body)
			if op.first != nil { // a retry answers what the first request got
				op.status, op.code = []int{op.first.gotStatus}, op.first.gotCode
				if op.first.gotCode == "" {
					op.status = []int{200}
				}
				if op.gotID != op.first.gotID {
					fail("%s: transfer %d, the first answer was %d", where, op.gotID, op.first.gotID)
				}
			}
			okStatus := false
			for _, s := range op.status {
				okStatus = okStatus || s == op.gotStatus
			}
			if !okStatus || op.gotCode != op.code {
				fail("%s: got %d %q, model predicts %v %q", where, op.gotStatus, op.gotCode, op.status, op.code)
			}
			outcomes[fmt.Sprintf("%s→%d", op.desc, op.gotStatus)]++
			if op.code == "" && op.first == nil {
				k := modelKey{op.who.ID, op.body["idempotency_key"].(string)}
				if prev, seen := ids[k]; seen && prev != op.gotID {
					fail("%s: a duplicate moved money twice (transfers %d and %d)", where, prev, op.gotID)
				}
				ids[k] = op.gotID
			}
			if (op.code == "" || op.code == "insufficient_funds" || op.code == "refund_exceeds_paid") && op.first == nil {
				k := modelKey{op.who.ID, op.body["idempotency_key"].(string)}
				if done[k] == nil {
					done[k] = op
					history = append(history, op)
				}
			}
		}
		for _, c := range members {
			if got := teststack.Balance(c); got != wallet[c.ID] {
				fail("after round %d: user %d's wallet holds %d, model says %d", round, c.ID, got, wallet[c.ID])
			}
		}
		for _, r := range rooms {
			if got := teststack.FundOf(admin, r).Balance; got != fund[r] {
				fail("after round %d: room %d's fund holds %d, model says %d", round, r, got, fund[r])
			}
		}
	}
	// PIN lockout: once a member sets a PIN, moves without it are refused,
	// five wrong PINs at once lock the wallet (exactly one sees 429), and
	// none of them moves money.
	locked := members[1]
	locked.Must(204, "PUT", "/api/wallet/pin", map[string]any{"pin": "135790"}, nil)
	locked.Fails(401, "pin_required", "POST", "/api/wallet/transfers", map[string]any{"to_user_id": admin.ID, "amount": 1, "idempotency_key": "pin-0"})
	asLocked := *locked.Client
	asLocked.Header = map[string][]string{"X-Wallet-PIN": {"000000"}}
	wrong := &testkit.Client{T: t, Client: &asLocked}
	codes := make([]int, 5)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i], _ = wrong.Raw("POST", fmt.Sprintf("/api/rooms/%d/fund/pay", rooms[0]), map[string]any{"amount": 1, "idempotency_key": fmt.Sprint("pin-", i+1)})
		})
	}
	wg.Wait()
	if c403, c429 := countOf(codes, 403), countOf(codes, 429); c403 != 4 || c429 != 1 {
		fail("five wrong PINs at once answered %v, want four 403 and one 429", codes)
	}
	if got := teststack.Balance(locked); got != wallet[locked.ID] {
		fail("after the PIN lockout: user %d's wallet holds %d, model says %d", locked.ID, got, wallet[locked.ID])
	}

	// The books reconcile: each member's dues status is what they paid
	// less refunds, and each fund's balance is the sum of its ledger.
	for _, r := range rooms {
		var st teststack.DuesStatus
		admin.Must(200, "GET", fmt.Sprintf("/api/rooms/%d/dues/status", r), nil, &st)
		for _, m := range st.Members {
			if m.Paid != paid[[2]int64{r, m.UserID}] {
				fail("room %d: status says user %d paid %d, the model %d", r, m.UserID, m.Paid, paid[[2]int64{r, m.UserID}])
			}
		}
		var sum int64
		for cursor := ""; ; {
			var page struct {
				Entries []struct {
					Amount int64 `json:"amount"`
				} `json:"entries"`
				NextCursor string `json:"next_cursor"`
			}
			admin.Must(200, "GET", fmt.Sprintf("/api/rooms/%d/fund/ledger?limit=200&cursor=%s", r, cursor), nil, &page)
			for _, e := range page.Entries {
				sum += e.Amount
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if sum != fund[r] {
			fail("room %d: ledger lines sum to %d, the fund holds %d", r, sum, fund[r])
		}
	}
	teststack.CheckBooks(t, n.DB)
	t.Logf("%d rounds, %d distinct keys; replies: %v", rounds, len(done), outcomes)
}

func countOf(xs []int, x int) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}
