// Small DOM helpers shared by the views: element building, dialogs,
// toasts, and the number and time formats.
import { t, lang, LANG_KEY } from "./i18n.js";

// h builds an element: h("button", {class: "x", onclick: fn}, "text", child).
// Attributes starting with "on" are listeners; false/null/undefined
// attributes and children are skipped; arrays of children are flattened.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// keeper keeps what is typed into a form's fields in view, an object that
// outlives a re-render, keyed by each field's data-testid: a panel that
// reloads (a fee event) rebuilds its forms without losing what a user was
// typing. kept(el) restores and follows a field; forget(...els) drops
// them once their form is submitted.
export function keeper(view) {
  return {
    kept(el) {
      const key = el.dataset.testid;
      if (view[key] !== undefined) {
        const own = el.value;
        el.value = view[key];
        // A choice no longer offered (a member who left) gives way to
        // the form's own.
        if (el.tagName === "SELECT" && el.selectedIndex < 0) el.value = own;
      }
      const follow = () => (view[key] = el.value);
      el.addEventListener("input", follow);
      el.addEventListener("change", follow);
      return el;
    },
    forget(...els) {
      els.forEach((el) => delete view[el.dataset.testid]);
    },
  };
}

// newest numbers a panel's reloads: newest() is called as a reload starts
// and gives back whether that reload is still the last one started. A
// slow reload's answers can come after a later one's (a money move between
// them), and the older must not paint over what the newer showed.
export function newest() {
  let last = 0;
  return () => {
    const mine = ++last;
    return () => mine === last;
  };
}

// heldWhilePressed wraps render, which rebuilds el's contents, so that a
// render asked for while a pointer is pressed inside el waits until it is
// released: rebuilt under a press, the element pressed is detached and
// the browser drops its click (a room tapped as a message reorders the
// list, Spend pressed as a member's payment reloads the dues panel). The
// held render runs after the release's click. off removes its listeners.
export function heldWhilePressed(el, render) {
  let pressed = false;
  let due = false;
  el.addEventListener("pointerdown", () => (pressed = true));
  const released = () => {
    pressed = false;
    if (!due) return;
    due = false;
    setTimeout(render);
  };
  document.addEventListener("pointerup", released, true);
  document.addEventListener("pointercancel", released, true);
  return {
    render: () => (pressed ? (due = true) : render()),
    off: () => {
      due = false;
      document.removeEventListener("pointerup", released, true);
      document.removeEventListener("pointercancel", released, true);
    },
  };
}

// keepingFocus runs rebuild, which redraws el's contents, and gives the
// focus back to the field that had it, with its selection: to that same
// field when rebuild put it back into el (a field that lives across the
// renders), or else to the one field rebuild made with its data-testid
// (a form drawn anew, its typed values kept by keeper). Moved out of the
// page or replaced, a field loses the focus, and what is typed next goes
// nowhere (a treasurer typing a spend or a refund as a member's payment
// reloads the dues panel).
export function keepingFocus(el, rebuild) {
  const had = el.contains(document.activeElement) ? document.activeElement : null;
  let sel = null;
  try {
    sel = had && had.selectionStart != null ? [had.selectionStart, had.selectionEnd] : null;
  } catch {
    sel = null; // inputs such as type=number have no selection
  }
  rebuild();
  if (!had || had === document.activeElement) return;
  const now = el.contains(had) ? had : sameField(el, had);
  if (!now) return;
  now.focus({ preventScroll: true });
  if (sel && now.value.length >= sel[1]) now.setSelectionRange(sel[0], sel[1]);
}

// sameField is the field el holds in place of old, drawn anew: the one
// with old's data-testid, null when there is none or more than one.
function sameField(el, old) {
  const id = old.dataset.testid;
  if (!id) return null;
  const found = el.querySelectorAll(`[data-testid="${CSS.escape(id)}"]`);
  return found.length === 1 ? found[0] : null;
}

// uuid is a random v4 UUID. crypto.randomUUID exists only in secure
// contexts, and a club may well open the app over plain http on a LAN.
export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const money = () => new Intl.NumberFormat(lang(), { style: "currency", currency: "KRW", maximumFractionDigits: 0 });

// won formats an amount of Korean won: ₩30,000.
export function won(n) {
  return money().format(n);
}

// zone is the time zone dates are shown in: Korea's for a Korean reader
// (dues periods and auto-pay runs are KST wherever the browser is), the
// browser's own otherwise.
const zone = () => (lang() === "ko" ? { timeZone: "Asia/Seoul" } : {});

// clock is a message time: 14:03, or with the date when not today.
export function clock(ms) {
  const d = new Date(ms);
  const now = new Date();
  const opts = { hour: "numeric", minute: "2-digit", ...zone() };
  if (d.toDateString() !== now.toDateString()) Object.assign(opts, { month: "short", day: "numeric" });
  return new Intl.DateTimeFormat(lang(), opts).format(d);
}

// day is the date line between messages of different days.
export function day(ms) {
  return new Intl.DateTimeFormat(lang(), { year: "numeric", month: "long", day: "numeric", weekday: "short", ...zone() }).format(new Date(ms));
}

// date is a moment with its day: 11월 25일 오전 6:00, Nov 25, 6:00 AM.
export function date(iso) {
  return new Intl.DateTimeFormat(lang(), { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", ...zone() }).format(new Date(iso));
}

// calendarDay is a day without a time: 2026년 11월 25일, Nov 25, 2026. A
// bare date ("2026-11-25") is that day wherever the reader is.
export function calendarDay(iso) {
  const bare = /^\d{4}-\d{2}-\d{2}$/.test(iso);
  return new Intl.DateTimeFormat(lang(), { year: "numeric", month: "short", day: "numeric", ...(bare ? { timeZone: "UTC" } : zone()) }).format(new Date(iso));
}

// period names a dues period for the reader: "2026-11" is November 2026
// (2026년 11월), "2026-W47" week 47 of 2026; anything else as given.
export function period(p) {
  const month = /^(\d{4})-(\d{2})$/.exec(p || "");
  if (month) {
    return new Intl.DateTimeFormat(lang(), { year: "numeric", month: "long", timeZone: "UTC" })
      .format(Date.UTC(Number(month[1]), Number(month[2]) - 1, 15));
  }
  const week = /^(\d{4})-W(\d{2})$/.exec(p || "");
  return week ? t("period.week", week[1], Number(week[2])) : p || "";
}

// thisPeriod is the current dues period in Korea ("2026-11" or
// "2026-W47"), which is how the server names periods.
export function thisPeriod(kind) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date()).map((x) => [x.type, x.value]));
  if (kind !== "weekly") return `${parts.year}-${parts.month}`;
  // ISO week: the Thursday of this week decides the year.
  const d = new Date(Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day)));
  const wd = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - wd);
  const jan1 = Date.UTC(d.getUTCFullYear(), 0, 1);
  const w = Math.ceil(((d - jan1) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(w).padStart(2, "0")}`;
}

// initial is the avatar letter of a name (a Hangul syllable stays whole).
export function initial(name) {
  return [...(name || "?").trim()][0]?.toUpperCase() || "?";
}

// modal shows a dialog built by build(close) and resolves with what
// close was given; Escape and the backdrop close it with undefined.
export function modal(title, build, { testid } = {}) {
  return new Promise((resolve) => {
    const root = document.getElementById("modals");
    const prev = document.activeElement;
    let done = false;
    const close = (value) => {
      if (done) return;
      done = true;
      back.remove();
      document.removeEventListener("keydown", onKey);
      if (prev && prev.focus) prev.focus();
      resolve(value);
    };
    const onKey = (e) => {
      if (e.key === "Escape") close(undefined);
    };
    const box = h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": title, "data-testid": testid },
      h("div", { class: "modal-head" },
        h("h2", {}, title),
        h("button", { class: "icon-btn", type: "button", "aria-label": t("close"), onclick: () => close(undefined) }, "✕")),
      build(close));
    const back = h("div", { class: "backdrop", onclick: (e) => e.target === back && close(undefined) }, box);
    root.append(back);
    document.addEventListener("keydown", onKey);
    const first = box.querySelector("input, select, textarea, .modal-body button");
    if (first) first.focus();
  });
}

// confirm asks a yes/no question in a dialog.
export function confirm(title, text, okLabel, { testid } = {}) {
  return modal(title, (close) => h("div", { class: "modal-body" },
    h("p", {}, text),
    h("div", { class: "row end" },
      h("button", { type: "button", class: "btn", onclick: () => close(false) }, t("cancel")),
      h("button", { type: "button", class: "btn primary", "data-testid": "confirm-ok", onclick: () => close(true) }, okLabel))),
  { testid }).then(Boolean);
}

// toast shows a short notice at the bottom of the screen.
export function toast(text, kind = "info") {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), 3000);
}

// errorText is what to tell the user about a failed request.
export function errorText(err) {
  if (err && err.code === "network") return t("err.network");
  return (err && err.message) || t("err.unknown");
}

const ICONS = {
  lock: '<path d="M7 10V7a5 5 0 0 1 10 0v3M5 10h14v11H5z"/>',
  back: '<path d="M15 5l-7 7 7 7"/>',
  send: '<path d="M4 12l16-8-6 16-3-7z"/>',
  reply: '<path d="M10 8L4 13l6 5M4 13h10a6 6 0 0 1 6 6"/>',
  trash: '<path d="M5 7h14M9 7V4h6v3M7 7l1 13h8l1-13"/>',
  coin: '<circle cx="12" cy="12" r="8"/><path d="M8 9l2 7 2-5 2 5 2-7M7 12h10"/>',
  down: '<path d="M6 9l6 6 6-6"/>',
  attach: '<path d="M16 7l-7.5 7.5a2 2 0 0 0 3 3L19 10a4 4 0 0 0-6-6l-8 8a6 6 0 0 0 8.5 8.5L20 14"/>',
  bell: '<path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 20a2 2 0 0 0 4 0"/>',
  bellOff: '<path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 20a2 2 0 0 0 4 0M4 4l16 16"/>',
  search: '<circle cx="11" cy="11" r="6"/><path d="M20 20l-4.5-4.5"/>',
  people: '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0M16 4.5a3.5 3.5 0 0 1 0 7M18 14a5 5 0 0 1 3.5 6"/>',
};

// icon is a small line drawing (no emoji font needed) named by name.
export function icon(name, label) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else svg.setAttribute("aria-hidden", "true");
  svg.innerHTML = ICONS[name];
  return svg;
}

// langToggle switches between Korean and English (reloading the page, so
// every view is redrawn in the new language).
export function langToggle() {
  const other = lang() === "ko" ? "en" : "ko";
  return h("button", {
    type: "button", class: "btn ghost small", lang: other, "data-testid": "lang",
    onclick: () => {
      localStorage.setItem(LANG_KEY, other);
      location.reload();
    },
  }, other === "ko" ? "한국어" : "English");
}
