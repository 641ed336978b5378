// The treasurer's desk in the dues panel (owner and admins): the rule in
// force and the one coming next, recording cash a member handed over,
// waiving a member for a period, and the audit log of every rule change,
// record and waiver, filtered by kind and member.
import { api } from "./api.js";
import { memberName } from "./state.js";
import { h, errorText, won, date, period, thisPeriod, keeper } from "./ui.js";
import { t } from "./i18n.js";

// deskSection needs the room, the panel's data (dues, status, members),
// act(fn, okText) to run a change and reload the panel, and view, an
// object the panel keeps across reloads (what is typed in the forms and
// the audit log's filters live there, so a fee event's reload resets
// neither).
export function deskSection({ room, data, act, view }) {
  const current = data.dues && data.dues.current;
  const kind = current ? current.period : "monthly";
  const nowPeriod = (data.status && data.status.period) || thisPeriod(kind);
  const members = data.members || [];
  const who = (testid) => h("select", { required: true, "data-testid": testid },
    members.map((m) => h("option", { value: m.user_id }, m.display_name)));
  const periodInput = (testid) => h("input", { required: true, value: nowPeriod, pattern: "\\d{4}-(\\d{2}|W\\d{2})", "data-testid": testid });
  const memo = (testid) => h("input", { maxlength: 200, "data-testid": testid });
  const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
  // What is typed survives a reload of the panel until it is submitted.
  const { kept, forget } = keeper(view);

  const recWho = kept(who("desk-record-who"));
  const recPeriod = kept(periodInput("desk-record-period"));
  const recAmount = kept(h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", required: true, value: current ? current.amount : "", "data-testid": "desk-record-amount" }));
  const recMemo = kept(memo("desk-record-memo"));
  const waiveWho = kept(who("desk-waive-who"));
  const waivePeriod = kept(periodInput("desk-waive-period"));
  const waiveMemo = kept(memo("desk-waive-memo"));

  return h("section", { class: "box desk", "aria-labelledby": `desk-${room}`, "data-testid": "desk" },
    h("h3", { id: `desk-${room}` }, t("desk.title")),
    rule(data.dues),
    h("form", {
      class: "stack", "data-testid": "desk-record",
      onsubmit: (e) => {
        e.preventDefault();
        const name = recWho.selectedOptions[0].textContent;
        forget(recWho, recPeriod, recAmount, recMemo);
        act(() => api.record(room, Number(recWho.value), recPeriod.value.trim(), Number(recAmount.value), recMemo.value),
          t("desk.recorded", name, period(recPeriod.value.trim()), won(Number(recAmount.value))));
      },
    },
    h("h4", {}, t("desk.record")),
    h("p", { class: "muted small" }, t("desk.recordHint")),
    h("div", { class: "row wrap" },
      field(t("dues.member"), recWho), field(t("desk.period"), recPeriod), field(t("dues.amount"), recAmount), field(t("dues.memo"), recMemo)),
    h("button", { type: "submit", class: "btn primary", "data-testid": "desk-record-save" }, t("desk.recordSave"))),
    h("form", {
      class: "stack", "data-testid": "desk-waive",
      onsubmit: (e) => {
        e.preventDefault();
        const name = waiveWho.selectedOptions[0].textContent;
        forget(waiveWho, waivePeriod, waiveMemo);
        act(() => api.waive(room, Number(waiveWho.value), waivePeriod.value.trim(), waiveMemo.value),
          t("desk.waived", name, period(waivePeriod.value.trim())));
      },
    },
    h("h4", {}, t("desk.waive")),
    h("div", { class: "row wrap" },
      field(t("dues.member"), waiveWho), field(t("desk.period"), waivePeriod), field(t("dues.memo"), waiveMemo)),
    h("button", { type: "submit", class: "btn", "data-testid": "desk-waive-save" }, t("desk.waiveSave"))),
    auditLog(room, members, view));
}

// rule shows the dues rule in force and a change waiting for its period.
function rule(dues) {
  const text = (p) => `${won(p.amount)} · ${p.period === "weekly" ? t("dues.weekly", t("weekday." + p.due_day)) : t("dues.monthly", p.due_day)}`;
  const cur = dues && dues.current;
  const next = dues && dues.next;
  return h("dl", { class: "facts", "data-testid": "desk-rule" },
    h("dt", {}, t("desk.ruleNow")),
    h("dd", { "data-testid": "desk-rule-now" }, cur ? `${text(cur)} (${t("desk.since", period(cur.effective_from))})` : t("dues.noPolicy")),
    h("dt", {}, t("desk.ruleNext")),
    h("dd", { "data-testid": "desk-rule-next" }, next ? `${text(next)} (${t("desk.since", period(next.effective_from))})` : t("desk.noChange")));
}

// auditLog lists the room's dues changes, newest first, filtered on the
// reader's side (the server keeps the latest 500).
function auditLog(room, members, view) {
  const kindSel = h("select", { "data-testid": "audit-kind" },
    ["", "policy", "record", "waiver"].map((k) => h("option", { value: k }, t("audit.kind." + (k || "all")))));
  const whoSel = h("select", { "data-testid": "audit-member" },
    h("option", { value: "" }, t("audit.everyone")),
    members.map((m) => h("option", { value: m.user_id }, m.display_name)));
  const list = h("ul", { class: "audit", "data-testid": "audit-list" }, h("li", { class: "muted" }, t("loading")));
  let entries = [];

  function render() {
    const rows = entries.filter((a) => (!kindSel.value || a.action === kindSel.value) &&
      (!whoSel.value || a.by === Number(whoSel.value) || (a.detail && a.detail.user_id === Number(whoSel.value))));
    list.replaceChildren(...(rows.length ? rows.map(line) : [h("li", { class: "muted" }, t("audit.none"))]));
  }

  function line(a) {
    const d = a.detail || {};
    const what = a.action === "policy"
      ? t("audit.policy", won(d.amount), d.period === "weekly" ? t("dues.weekly", t("weekday." + d.due_day)) : t("dues.monthly", d.due_day), period(d.effective_from))
      : a.action === "record"
        ? t("audit.record", memberName(room, d.user_id), period(d.period), won(d.amount))
        : t("audit.waiver", memberName(room, d.user_id), period(d.period));
    return h("li", { "data-testid": "audit-row", "data-action": a.action },
      h("div", {}, what, d.memo ? h("span", { class: "muted" }, ` — ${d.memo}`) : null),
      h("div", { class: "muted small" }, t("audit.by", memberName(room, a.by)), " · ", h("time", { datetime: a.created_at }, date(a.created_at))));
  }

  kindSel.value = view.kind || "";
  whoSel.value = view.who || "";
  kindSel.addEventListener("change", () => {
    view.kind = kindSel.value;
    render();
  });
  whoSel.addEventListener("change", () => {
    view.who = whoSel.value;
    render();
  });
  api.audit(room).then((a) => {
    entries = a;
    render();
  }, (e) => list.replaceChildren(h("li", { class: "error" }, errorText(e))));
  return h("div", { class: "stack" },
    h("h4", {}, t("audit.title")),
    h("div", { class: "row wrap" },
      h("label", { class: "field" }, h("span", {}, t("audit.filterKind")), kindSel),
      h("label", { class: "field" }, h("span", {}, t("audit.filterMember")), whoSel)),
    list);
}
