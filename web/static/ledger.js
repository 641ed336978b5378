// The fund's ledger in the dues panel: twenty lines a page, newest first,
// with "more" for older pages and the whole ledger as CSV. Cash records
// and waivers (off-wallet) come with the first page.
import { api } from "./api.js";
import { h, toast, errorText, won, date, period } from "./ui.js";
import { t } from "./i18n.js";
import { openReceipt } from "./files.js";

export function ledgerSection(room) {
  const body = h("tbody", {});
  const table = h("table", { class: "ledger", "data-testid": "ledger", hidden: true },
    h("caption", { class: "sr-only" }, t("dues.ledger")),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, t("dues.when")), h("th", { scope: "col" }, t("dues.what")),
      h("th", { scope: "col", class: "num" }, t("dues.amount")), h("th", { scope: "col", class: "num" }, t("dues.balance")))),
    body);
  const empty = h("p", { class: "muted" }, t("loading"));
  const more = h("button", { type: "button", class: "btn small", hidden: true, "data-testid": "ledger-more", onclick: () => page() }, t("desk.more"));
  let cursor = "";

  async function page() {
    more.disabled = true;
    try {
      const r = await api.ledgerPage(room, cursor);
      const lines = [...r.entries, ...(r.off_wallet || [])].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
      body.append(...lines.map(row));
      cursor = r.next_cursor;
      more.hidden = !cursor;
      table.hidden = !body.children.length;
      empty.hidden = !!body.children.length;
      empty.textContent = t("dues.noLedger");
    } catch (e) {
      empty.textContent = errorText(e);
    } finally {
      more.disabled = false;
    }
  }

  page();
  return h("section", { class: "box", "aria-labelledby": `ledger-${room}` },
    h("div", { class: "row between" },
      h("h3", { id: `ledger-${room}` }, t("dues.ledger")),
      h("button", { type: "button", class: "btn small", "data-testid": "ledger-csv", onclick: () => downloadCSV(room) }, t("dues.csv"))),
    h("div", { class: "scroll-x" }, table), empty, more);
}

function row(l) {
  return h("tr", { "data-testid": "ledger-row" },
    h("td", { class: "nowrap" }, date(l.at)),
    h("td", {}, h("div", {}, t("kind." + l.kind), l.member ? ` · ${l.member}` : "",
      l.off_wallet ? h("span", { class: "badge", "data-testid": "off-wallet" }, t("dues.offWallet")) : null,
      l.test ? h("span", { class: "badge test" }, t("dues.testMoney")) : null),
    l.memo || l.period ? h("div", { class: "muted small" }, l.memo || period(l.period)) : null,
    l.receipt_attachment_id ? h("button", { type: "button", class: "link small", "data-testid": "ledger-receipt", onclick: () => openReceipt(l.receipt_attachment_id) }, t("file.receipt")) : null),
    h("td", { class: `num ${l.off_wallet ? "" : l.amount < 0 ? "neg" : "pos"}` }, (l.amount > 0 && !l.off_wallet ? "+" : "") + won(l.amount)),
    h("td", { class: "num" }, l.off_wallet ? "—" : won(l.balance_after)));
}

async function downloadCSV(room) {
  try {
    const blob = await api.ledgerCSV(room);
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `moim-room-${room}-ledger.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    toast(errorText(e), "error");
  }
}
