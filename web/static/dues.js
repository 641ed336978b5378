// The dues panel of one room: the fund's balance, this period's status
// per member, paying dues from the wallet, auto-pay (autopay.js), the
// ledger with its CSV (ledger.js), and for admins the policy, spends,
// refunds, reminders and the treasurer's desk (desk.js). It reloads when
// a fee event arrives in the room, so every member sees a payment at once.
import { api } from "./api.js";
import { state, listen, isAdmin } from "./state.js";
import { h, confirm, toast, errorText, won, uuid, period, calendarDay, date, keeper, newest, heldWhilePressed, keepingFocus } from "./ui.js";
import { t } from "./i18n.js";
import { upload } from "./files.js";
import { deskSection } from "./desk.js";
import { autopaySection } from "./autopay.js";
import { ledgerSection } from "./ledger.js";
import { deleteRoomBox, handOverBox } from "./admin.js";
import { openCheckout, takeCheckoutResult } from "./checkout.js";

export function mountDues(el, room) {
  const body = h("div", { class: "panel-body", "data-testid": "dues-panel" }, h("p", { class: "muted pad" }, t("loading")));
  el.replaceChildren(
    h("header", { class: "panel-head" },
      h("a", { class: "icon-btn", href: `#/room/${room}`, "aria-label": t("close"), "data-testid": "close-dues" }, "✕"),
      h("h2", {}, t("dues.title")),
      h("span", { class: "muted small" }, state.rooms.get(room).name)),
    body);

  // Idempotency keys live until the server gave a definite answer, so a
  // retry after a network error can never move money twice.
  const keys = {};
  const keyFor = (what) => (keys[what] ||= uuid());
  const settled = (what, err) => {
    if (!err || (err.status >= 400 && err.status < 500)) delete keys[what];
  };

  // How the checkout this page came back from went, shown in the wallet.
  const checkout = takeCheckoutResult();
  let data = {};
  let alive = true;
  let deleting = false;
  let adminOpen = false;
  let timer;
  // loading is the reload in flight, which a deletion waits for.
  let loading = Promise.resolve();
  const reload = newest();

  function load() {
    loading = fetchAndRender();
    return loading;
  }

  async function fetchAndRender() {
    const latest = reload();
    const [fund, dues, wallet, members] = await Promise.allSettled([
      api.fund(room), api.dues(room), api.wallet(), api.members(room),
    ]);
    if (deleting) return;
    const d = {
      fund: fund.status === "fulfilled" ? fund.value : null,
      fundErr: fund.status === "rejected" && fund.reason.code !== "no_fund" ? fund.reason : null,
      dues: dues.status === "fulfilled" ? dues.value : null,
      wallet: wallet.status === "fulfilled" ? wallet.value : null,
      members: members.status === "fulfilled" ? members.value : state.members.get(room) || [],
    };
    if (members.status === "fulfilled") state.members.set(room, members.value);
    d.status = d.dues && d.dues.current ? await api.duesStatus(room).catch(() => null) : null;
    if (!alive || !latest()) return;
    data = d;
    shown.render();
  }

  // A reload under a press renders after the release (heldWhilePressed).
  const shown = heldWhilePressed(body, render);
  function render() {
    const admin = isAdmin(room);
    const current = data.dues && data.dues.current;
    keepingFocus(body, () => body.replaceChildren(...[
      fundSection(admin),
      periodSection(),
      admin ? adminSection() : null,
      admin && data.fund ? deskSection({ room, data, act, view: formView }) : null,
      walletSection(),
      data.fund ? autopay(admin, current) : null,
      data.fund ? ledgerSection(room) : null,
    ].filter(Boolean)));
  }

  // What is typed into the admin forms and the desk's filters, kept
  // across reloads.
  const formView = {};

  // One auto-pay section per panel, its list refreshed on each render.
  let autopayBox;
  function autopay(admin, current) {
    autopayBox ||= autopaySection({ room, admin, amount: current ? current.amount : 0, pin, act });
    autopayBox.refresh();
    return autopayBox.el;
  }

  function fundSection(admin) {
    const f = data.fund;
    if (!f) {
      return h("section", { class: "box" },
        h("h3", {}, t("dues.fund")),
        data.fundErr ? h("p", { class: "error" }, errorText(data.fundErr)) : h("p", { class: "muted" }, t("dues.noFund")),
        admin ? h("button", {
          type: "button", class: "btn primary", "data-testid": "open-fund",
          onclick: () => act(() => api.openFund(room), t("dues.fundOpened")),
        }, t("dues.openFund")) : null);
    }
    return h("section", { class: "box fund" },
      h("h3", {}, t("dues.fund")),
      h("div", { class: "big-amount", "data-testid": "fund-balance" }, won(f.balance)),
      h("p", { class: "muted small" }, t("dues.totals", won(f.total_in), won(f.total_out))));
  }

  function periodSection() {
    const p = data.dues && data.dues.current;
    if (!p) return h("section", { class: "box" }, h("h3", {}, t("dues.period")), h("p", { class: "muted" }, t("dues.noPolicy")));
    const s = data.status;
    const mine = s && s.members.find((m) => m.user_id === state.me.id);
    const owed = mine ? Math.max(0, mine.due - mine.paid) : 0;
    const canPay = data.fund && mine && owed > 0 && mine.state !== "waived";
    return h("section", { class: "box" },
      h("h3", {}, t("dues.period"), s ? h("span", { class: "muted" }, " " + period(s.period)) : null),
      h("p", {}, policyText(p)),
      s ? h("p", { class: "muted small" }, t("dues.due", calendarDay(s.due_date)), " · ", t("dues.paidCount", s.totals.paid_members, s.totals.members)) : null,
      canPay ? h("button", { type: "button", class: "btn primary wide", "data-testid": "pay-dues", onclick: () => pay(s, owed) }, t("dues.pay", won(owed))) : null,
      mine && owed === 0 ? h("p", { class: "ok" }, t("dues.youPaid")) : null,
      s ? h("table", { class: "status" },
        h("thead", {}, h("tr", {}, h("th", {}, t("dues.member")), h("th", {}, t("dues.state")), h("th", { class: "num" }, t("dues.paid")))),
        h("tbody", {}, s.members.map((m) => h("tr", { "data-testid": "dues-row", "data-user": m.user_id, "data-state": m.state },
          h("td", {}, m.name, m.user_id === state.me.id ? h("span", { class: "muted" }, ` (${t("you")})`) : null),
          h("td", {}, h("span", { class: `state ${m.state}`, "data-testid": "dues-state" }, t("state." + m.state))),
          h("td", { class: "num" }, `${won(m.paid)} / ${won(m.due)}`))))) : null);
  }

  function policyText(p) {
    const every = p.period === "weekly" ? t("dues.weekly", t("weekday." + p.due_day)) : t("dues.monthly", p.due_day);
    let text = `${won(p.amount)} · ${every}`;
    const next = data.dues.next;
    if (next) text += " — " + t("dues.next", period(next.effective_from), won(next.amount));
    return text;
  }

  // pinInput holds the wallet PIN for this panel's money moves; shown
  // only when the wallet has one.
  const pinInput = h("input", { type: "password", inputmode: "numeric", maxlength: 6, autocomplete: "off", placeholder: "••••••", "aria-label": t("dues.pin"), "data-testid": "pin-entry" });
  const pin = () => pinInput.value;

  // The wallet's fields live as long as the panel, like the spend form's:
  // a reload after any fee event re-renders the section around them and
  // must not reset an amount being typed.
  const num = (testid, value) => h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", value, "aria-label": t("dues.amount"), "data-testid": testid });
  const topUp = num("topup-amount", 50000);
  const out = num("withdraw-amount", 10000);
  const sendAmount = num("send-amount", 10000);
  const sendTo = h("select", { "aria-label": t("dues.sendTo"), "data-testid": "send-to" });
  const sendMemo = h("input", { maxlength: 200, placeholder: t("dues.memo"), "aria-label": t("dues.memo"), "data-testid": "send-memo" });
  const newPIN = h("input", { type: "password", inputmode: "numeric", maxlength: 6, pattern: "[0-9]{6}", required: true, autocomplete: "off", "aria-label": t("dues.newPIN"), "data-testid": "pin-new" });

  function walletSection() {
    const w = data.wallet;
    const others = (data.members || []).filter((m) => m.user_id !== state.me.id);
    const chosen = sendTo.value;
    sendTo.replaceChildren(...others.map((m) => h("option", { value: m.user_id }, m.display_name)));
    if (others.some((m) => String(m.user_id) === chosen)) sendTo.value = chosen;
    const form = (testid, onsubmit, ...kids) => h("form", {
      class: "row wrap", "data-testid": testid,
      onsubmit: (e) => {
        e.preventDefault();
        onsubmit();
      },
    }, ...kids);
    return h("section", { class: "box" },
      h("h3", {}, t("dues.wallet"), w && w.test_money ? h("span", { class: "badge test", "data-testid": "test-money" }, t("dues.testMoney")) : null),
      h("div", { class: "amount", "data-testid": "wallet-balance" }, w ? won(w.balance) : "—"),
      w && w.held ? h("p", { class: "muted small", "data-testid": "wallet-held" }, t("dues.held", won(w.held))) : null,
      checkout ? h("p", { class: checkout.ok ? "ok" : "error", role: checkout.ok ? "status" : "alert", "data-testid": "checkout-result" }, checkout.text) : null,
      w && w.pending_topups && w.pending_topups.length ? pendingTopUps(w.pending_topups) : null,
      w && w.has_pin ? h("label", { class: "field" }, h("span", {}, t("dues.pin")), pinInput) : null,
      w && w.provider ? form("topup-form", () => {
        const n = Number(topUp.value);
        act(() => api.topUp(n, keyFor("topup")).then((p) => {
          // A real provider answers pending: its payment window is next,
          // and the browser comes back through finishCheckout.
          // A checkout that ended without paying ended its top-up: the
          // next try needs a key of its own.
          if (p.status === "pending" && p.checkout) {
            return openCheckout(p, room).catch((e) => {
              delete keys.topup;
              throw e;
            });
          }
          if (p.status !== "confirmed") throw Object.assign(new Error(t("checkout.failed", p.failure || "")), { code: "failed" });
        }), t("dues.deposited", won(n)), "topup");
      }, topUp, h("button", { type: "submit", class: "btn", "data-testid": "topup" }, w.test_money ? t("dues.topUpTest") : t("dues.topUp"))) :
        h("p", { class: "muted small" }, t("dues.noPayments")),
      w && w.provider && !w.withdrawals ? h("p", { class: "muted small", "data-testid": "withdraw-unavailable" }, t("dues.noWithdrawals")) : null,
      w && w.withdrawals ? form("withdraw-form", () => {
        const n = Number(out.value);
        act(() => api.withdraw(n, keyFor("withdraw"), pin()).then((p) => {
          if (p.status === "failed") throw Object.assign(new Error(t("dues.withdrawFailed", p.failure || "")), { code: "failed" });
        }), t("dues.withdrawn", won(n)), "withdraw");
      }, out, h("button", { type: "submit", class: "btn", "data-testid": "withdraw" }, t("dues.withdraw"))) : null,
      others.length ? form("send-form", async () => {
        const n = Number(sendAmount.value);
        const who = sendTo.selectedOptions[0].textContent;
        if (!(await confirm(t("dues.send"), t("dues.sendConfirm", won(n), who), t("dues.send"), { testid: "send-dialog" }))) return;
        act(() => api.send(Number(sendTo.value), n, sendMemo.value, keyFor("send"), pin()).then(() => { sendMemo.value = ""; }), t("dues.sent", won(n), who), "send");
      }, sendTo, sendAmount, sendMemo, h("button", { type: "submit", class: "btn", "data-testid": "send-money" }, t("dues.send"))) : null,
      form("pin-form", () => {
        act(() => api.setPIN(newPIN.value, pin()).then(() => { newPIN.value = ""; }), t("dues.pinSet"));
      }, newPIN, h("button", { type: "submit", class: "btn small", "data-testid": "pin-save" }, w && w.has_pin ? t("dues.changePIN") : t("dues.setPIN"))),
      h("p", { class: "muted small" }, t("dues.topUpHint")));
  }

  // pendingTopUps lists top-ups started and not paid (a payment window
  // left open or abandoned), each with a way to end it.
  function pendingTopUps(list) {
    return h("section", { class: "stack", "aria-labelledby": `pending-topups-${room}`, "data-testid": "pending-topups" },
      h("h4", { id: `pending-topups-${room}` }, t("dues.pendingTopUps")),
      h("ul", { class: "people" }, list.map((p) => h("li", { class: "person", "data-testid": "pending-topup", "data-order": p.order_id },
        h("span", { class: "grow" }, t("dues.pendingTopUp", won(p.amount), date(p.created_at))),
        h("button", {
          type: "button", class: "btn small", "aria-label": t("dues.cancelTopUpLabel", won(p.amount)), "data-testid": "cancel-topup",
          onclick: async () => {
            if (!(await confirm(t("dues.cancelTopUpLabel", won(p.amount)), t("dues.cancelTopUpConfirm", won(p.amount)), t("dues.cancelTopUp"), { testid: "cancel-topup-dialog" }))) return;
            act(() => api.cancelTopUp(p.order_id, "USER_CANCEL", "cancelled from the wallet"), t("dues.topUpCancelled", won(p.amount)));
          },
        }, t("dues.cancelTopUp"))))));
  }

  async function pay(s, owed) {
    const balance = data.wallet ? data.wallet.balance : 0;
    const text = t("dues.payConfirm", won(owed), s.period, won(balance));
    if (!(await confirm(t("dues.payTitle"), text, t("dues.payOk"), { testid: "pay-dialog" }))) return;
    act(() => api.pay(room, owed, s.period, keyFor("pay"), pin()), t("dues.paidToast", won(owed)), "pay");
  }

  // The spend form's fields live as long as the panel: a reload (after any
  // fee event) re-renders the section around them, and must not drop an
  // amount being typed or a receipt already uploaded.
  const spendAmount = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true, "aria-label": t("dues.amount") });
  const spendMemo = h("input", { required: true, maxlength: 200, placeholder: t("dues.memo"), "aria-label": t("dues.memo") });
  // The receipt is uploaded to the room when picked; the spend names it.
  let receipt = null;
  const receiptState = h("span", { class: "muted small", "data-testid": "receipt-state", "aria-live": "polite" }, t("file.noReceipt"));
  const receiptInput = h("input", {
    type: "file", accept: "image/*,application/pdf", "aria-label": t("file.receipt"), "data-testid": "receipt-input",
    onchange: async () => {
      const file = receiptInput.files[0];
      receipt = null;
      if (!file) return;
      try {
        receipt = await upload(room, file, (p) => (receiptState.textContent = t("file.uploading", Math.round(p * 100))));
        receiptState.textContent = t("file.receiptReady", receipt.name);
      } catch (e) {
        receiptState.textContent = errorText(e);
        receiptInput.value = "";
      }
    },
  });

  function adminSection() {
    const members = data.members || [];
    const { kept, forget } = keeper(formView);
    const amount = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true, "data-testid": "policy-amount", value: data.dues && data.dues.current ? data.dues.current.amount : "" });
    const period = h("select", { "data-testid": "policy-period" },
      h("option", { value: "monthly" }, t("dues.monthlyName")), h("option", { value: "weekly" }, t("dues.weeklyName")));
    const dueDay = h("input", { type: "number", min: 1, max: 31, required: true, "data-testid": "policy-day", value: data.dues && data.dues.current ? data.dues.current.due_day : 25 });
    if (data.dues && data.dues.current) period.value = data.dues.current.period;
    // A reload while the treasurer types (a member paid) keeps the rule typed.
    kept(amount);
    kept(period);
    kept(dueDay);
    const dayHint = h("span", { class: "muted small" });
    const syncDay = () => {
      dueDay.max = period.value === "weekly" ? 7 : 31;
      dayHint.textContent = period.value === "weekly" ? t("dues.dayWeekly") : t("dues.dayMonthly");
    };
    period.addEventListener("change", syncDay);
    syncDay();

    const refundWho = h("select", { "aria-label": t("dues.member"), "data-testid": "refund-who" }, members.map((m) => h("option", { value: m.user_id }, m.display_name)));
    const refundAmount = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true, "aria-label": t("dues.amount"), "data-testid": "refund-amount" });
    const refundMemo = h("input", { required: true, maxlength: 200, placeholder: t("dues.memo"), "aria-label": t("dues.memo"), "data-testid": "refund-memo" });
    kept(refundWho);
    kept(refundAmount);
    kept(refundMemo);

    // Open while there is something to set up and after (the treasurer is
    // still at it), otherwise as the treasurer last left it. The click on
    // the summary records that, not the toggle event: that comes a task
    // later, when a reload may already have drawn the section anew, closed.
    if (!data.fund || !(data.dues && data.dues.current)) adminOpen = true;
    const section = h("details", { class: "box admin", open: adminOpen },
      h("summary", { "data-testid": "admin-tools", onclick: () => (adminOpen = !section.open) }, t("dues.admin")),
      h("form", {
        class: "stack",
        onsubmit: (e) => {
          e.preventDefault();
          forget(amount, period, dueDay);
          act(() => api.setDues(room, Number(amount.value), period.value, Number(dueDay.value)), t("dues.policySaved"));
        },
      },
      h("h4", {}, t("dues.policy")),
      h("div", { class: "row wrap" },
        h("label", { class: "field" }, h("span", {}, t("dues.amount")), amount),
        h("label", { class: "field" }, h("span", {}, t("dues.every")), period),
        h("label", { class: "field" }, h("span", {}, t("dues.dueDay")), dueDay)),
      dayHint,
      h("button", { type: "submit", class: "btn primary", "data-testid": "save-policy" }, t("dues.savePolicy"))),
      data.fund ? h("form", {
        class: "stack",
        onsubmit: async (e) => {
          e.preventDefault();
          const n = Number(spendAmount.value);
          if (!(await confirm(t("dues.spend"), t("dues.spendConfirm", won(n), spendMemo.value), t("dues.spend")))) return;
          act(async () => {
            await api.spend(room, n, spendMemo.value, keyFor("spend"), receipt && receipt.id);
            // Spent: the next spend starts empty, with no receipt.
            spendAmount.value = spendMemo.value = receiptInput.value = "";
            receipt = null;
            receiptState.textContent = t("file.noReceipt");
          }, t("dues.spent", won(n)), "spend");
        },
      }, h("h4", {}, t("dues.spend")), h("div", { class: "row" }, spendAmount, spendMemo),
      h("label", { class: "field" }, h("span", {}, t("file.receipt")), receiptInput, receiptState),
      h("button", { type: "submit", class: "btn", "data-testid": "spend-submit" }, t("dues.spend"))) : null,
      data.fund ? h("form", {
        class: "stack",
        onsubmit: async (e) => {
          e.preventDefault();
          const n = Number(refundAmount.value);
          const who = refundWho.selectedOptions[0].textContent;
          if (!(await confirm(t("dues.refund"), t("dues.refundConfirm", won(n), who, refundMemo.value), t("dues.refund")))) return;
          act(async () => {
            await api.refund(room, Number(refundWho.value), n, refundMemo.value, keyFor("refund"));
            forget(refundWho, refundAmount, refundMemo);
          }, t("dues.refunded", won(n)), "refund");
        },
      }, h("h4", {}, t("dues.refund")), h("div", { class: "row wrap" }, refundWho, refundAmount, refundMemo), h("button", { type: "submit", class: "btn", "data-testid": "refund" }, t("dues.refund"))) : null,
      state.rooms.get(room).role === "owner" ? deleteRoomBox({
        room,
        balance: data.fund ? data.fund.balance : 0,
        // No reload (after a fee event) may ask for the room while or
        // after it is deleted.
        onStart: async () => {
          deleting = true;
          clearTimeout(timer);
          await loading.catch(() => {});
        },
        onFail: () => (deleting = false),
      }) : null,
      state.rooms.get(room).role === "owner" ? handOverBox(room, members, act, { kept, forget }) : null,
      data.status ? h("div", { class: "stack" },
        h("h4", {}, t("dues.remind")),
        h("p", { class: "muted small" }, t("dues.remindHint")),
        h("button", {
          type: "button", class: "btn", "data-testid": "remind",
          onclick: () => act(() => api.remind(room), t("dues.reminded")),
        }, t("dues.remind"))) : null);
    return section;
  }

  // act runs a change, says how it went and shows the new state.
  async function act(fn, okText, key) {
    try {
      await fn();
      if (key) settled(key);
      toast(okText, "ok");
    } catch (e) {
      if (key) settled(key, e);
      const known = { insufficient_funds: "dues.insufficient", pin_required: "dues.pinRequired", wrong_pin: "dues.wrongPIN", pin_locked: "dues.pinLocked", payment_confirmed: "checkout.paidAfterAll" };
      toast(known[e.code] ? t(known[e.code]) : e.code === "pending" || e.code === "failed" ? e.message : errorText(e), "error");
    }
    await load().catch((e) => toast(errorText(e), "error"));
  }

  const off = listen({
    msg: (m) => {
      if (m.room !== room || m.kind !== "fee" || deleting) return;
      clearTimeout(timer);
      timer = setTimeout(() => load().catch(() => {}), 200);
    },
  });
  load().catch((e) => body.replaceChildren(h("p", { class: "error pad" }, errorText(e))));
  return () => {
    alive = false;
    off();
    shown.off();
    clearTimeout(timer);
  };
}
