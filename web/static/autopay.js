// Auto-pay (예약송금) in the dues panel: the orders into this room's fund
// with their next run and last result — every member's for the owner and
// admins, one's own for anyone else — and a form to set up one's own
// order (monthly on a day, or once on a date) and to cancel it. Only the
// payer creates or cancels an order: it spends their wallet.
import { api } from "./api.js";
import { state, memberName } from "./state.js";
import { h, confirm, errorText, won, date, calendarDay, period, newest } from "./ui.js";
import { t } from "./i18n.js";

// autopaySection needs the room, whether the reader is an admin, the
// current dues amount (the form's default), pin() for the wallet PIN and
// act(fn, okText) to run a change and reload the panel. It returns the
// section and refresh(), which reloads the orders: the panel keeps one
// section, so a fee event's reload never wipes a half-filled form.
export function autopaySection({ room, admin, amount, pin, act }) {
  const list = h("div", { "data-testid": "autopay-list" }, h("p", { class: "muted" }, t("loading")));
  const id = `autopay-${room}`;
  const reload = newest();

  function refresh() {
    const latest = reload();
    api.roomSchedules(room).then((orders) => {
      if (latest()) list.replaceChildren(orders.length ? table(orders) : h("p", { class: "muted" }, t("autopay.none")));
    }, (e) => list.replaceChildren(h("p", { class: "error" }, errorText(e))));
  }

  function table(orders) {
    return h("div", { class: "scroll-x" }, h("table", { class: "ledger" },
      h("caption", { class: "sr-only" }, t("autopay.title")),
      h("thead", {}, h("tr", {},
        admin ? h("th", { scope: "col" }, t("dues.member")) : null,
        h("th", { scope: "col" }, t("autopay.when")),
        h("th", { scope: "col", class: "num" }, t("dues.amount")),
        h("th", { scope: "col" }, t("autopay.next")),
        h("th", { scope: "col" }, t("autopay.last")),
        h("th", { scope: "col" }, h("span", { class: "sr-only" }, t("autopay.actions"))))),
      h("tbody", {}, orders.map((o) => h("tr", { "data-testid": "autopay-row", "data-user": o.user_id, "data-state": o.state },
        admin ? h("td", {}, memberName(room, o.user_id)) : null,
        h("td", {}, o.day_of_month ? t("autopay.monthlyOn", o.day_of_month) : t("autopay.onceOn", calendarDay(o.at))),
        h("td", { class: "num" }, won(o.amount)),
        h("td", { "data-testid": "autopay-next" }, o.next_run ? date(o.next_run) : t("autopay.state." + o.state)),
        h("td", { "data-testid": "autopay-last" }, lastRun(o)),
        h("td", {}, o.state === "active" && o.user_id === state.me.id ? h("button", {
          type: "button", class: "btn small", "data-testid": "autopay-cancel",
          onclick: async () => {
            if (!(await confirm(t("autopay.cancel"), t("autopay.cancelConfirm"), t("autopay.cancel"), { testid: "autopay-cancel-dialog" }))) return;
            act(() => api.cancelSchedule(o.id), t("autopay.cancelled"));
          },
        }, t("autopay.cancel")) : null))))));
  }

  function lastRun(o) {
    const r = o.runs && o.runs[0];
    if (!r) return h("span", { class: "muted" }, t("autopay.noRuns"));
    const why = r.reason === "insufficient_funds" ? t("reason.insufficient_funds") : r.reason || "";
    return h("span", { class: `run ${r.status}` }, `${period(r.period)} · ${t("autopay.run." + r.status)}`, why ? ` — ${why}` : "");
  }

  // The form: monthly on a day, or once on a date.
  const monthly = h("input", { type: "radio", name: `${id}-kind`, value: "monthly", checked: true, "data-testid": "autopay-monthly" });
  const once = h("input", { type: "radio", name: `${id}-kind`, value: "once", "data-testid": "autopay-once" });
  const day = h("input", { type: "number", min: 1, max: 31, required: true, value: 25, inputmode: "numeric", "data-testid": "autopay-day" });
  const on = h("input", { type: "date", "data-testid": "autopay-date" });
  const sum = h("input", { type: "number", min: 1, step: 1, required: true, inputmode: "numeric", value: amount || "", "data-testid": "autopay-amount" });
  const dayRow = h("label", { class: "field" }, h("span", {}, t("autopay.day")), day);
  const dateRow = h("label", { class: "field", hidden: true }, h("span", {}, t("autopay.date")), on);
  const sync = () => {
    dayRow.hidden = !monthly.checked;
    dateRow.hidden = monthly.checked;
    day.required = monthly.checked;
    on.required = !monthly.checked;
  };
  monthly.addEventListener("change", sync);
  once.addEventListener("change", sync);

  const form = h("form", {
    class: "stack", "data-testid": "autopay-form",
    onsubmit: (e) => {
      e.preventDefault();
      const body = { room_id: room, amount: Number(sum.value) };
      if (monthly.checked) body.day_of_month = Number(day.value);
      else body.at = on.value;
      act(() => api.createSchedule(body, pin()), t("autopay.created"));
    },
  },
  h("h4", {}, t("autopay.new")),
  h("fieldset", { class: "row wrap plain" },
    h("legend", { class: "sr-only" }, t("autopay.kind")),
    h("label", { class: "check" }, monthly, h("span", {}, t("autopay.monthly"))),
    h("label", { class: "check" }, once, h("span", {}, t("autopay.once")))),
  h("div", { class: "row wrap" }, dayRow, dateRow, h("label", { class: "field" }, h("span", {}, t("dues.amount")), sum)),
  h("p", { class: "muted small" }, t("autopay.hint")),
  h("button", { type: "submit", class: "btn primary", "data-testid": "autopay-create" }, t("autopay.create")));

  const el = h("section", { class: "box", "aria-labelledby": id, "data-testid": "autopay" },
    h("h3", { id }, t("autopay.title")),
    admin ? h("p", { class: "muted small" }, t("autopay.adminHint")) : null,
    list, form);
  return { el, refresh };
}
