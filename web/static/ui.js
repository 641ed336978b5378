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

// clock is a message time: 14:03, or with the date when not today.
export function clock(ms) {
  const d = new Date(ms);
  const now = new Date();
  const opts = { hour: "numeric", minute: "2-digit" };
  if (d.toDateString() !== now.toDateString()) Object.assign(opts, { month: "short", day: "numeric" });
  return new Intl.DateTimeFormat(lang(), opts).format(d);
}

// day is the date line between messages of different days.
export function day(ms) {
  return new Intl.DateTimeFormat(lang(), { year: "numeric", month: "long", day: "numeric", weekday: "short" }).format(new Date(ms));
}

export function date(iso) {
  return new Intl.DateTimeFormat(lang(), { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }).format(new Date(iso));
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
