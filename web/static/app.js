// Moim's web client: log in, then the room list, the open room's chat and
// its dues panel, kept live by one WebSocket. Routes live in the URL
// fragment (#/room/7, #/room/7/dues, #/room/7/admin) so the server only
// serves /.
import { api, session, UNAUTHORIZED } from "./api.js";
import { Socket } from "./socket.js";
import { state, emit, roomMsgs } from "./state.js";
import { h, toast, errorText, langToggle } from "./ui.js";
import { t, lang } from "./i18n.js";
import { mountSidebar } from "./rooms.js";
import { mountChat } from "./chat.js";
import { mountDues } from "./dues.js";
import { applyEdit, joinPage, mentionsMe } from "./club.js";
import { registerWorker, reconnecting } from "./push.js";
import { forget } from "./files.js";
import { mountAdmin } from "./admin.js";
import { finishCheckout } from "./checkout.js";

const root = document.getElementById("app");
const NOTICE = "moim.notice";

boot();

async function boot() {
  document.documentElement.lang = lang();
  document.title = t("app.title");
  window.addEventListener(UNAUTHORIZED, () => logout(t("auth.expired")));
  registerWorker();
  signIn();
}

async function signIn() {
  if (!session.token) return showAuth();
  try {
    state.me = await api.me();
  } catch (err) {
    if (err.status === 401 || err.status === 404) {
      session.token = "";
      return showAuth();
    }
    // Opened offline (the shell came from the service worker's cache), or
    // the node is restarting: wait for it.
    if (err.code === "network") return reconnecting(root, signIn);
    return showFatal(err);
  }
  await start();
}

function showFatal(err) {
  root.replaceChildren(h("div", { class: "auth" }, h("div", { class: "auth-card" },
    h("p", { class: "error" }, errorText(err)),
    h("button", { class: "btn primary", onclick: () => location.reload() }, t("retry")))));
}

// showAuth is the log-in / sign-up screen.
function showAuth() {
  let signup = false;
  const notice = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  const err = h("p", { class: "error", role: "alert", "data-testid": "auth-error" }, notice || "");
  const username = h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false", "data-testid": "auth-username" });
  const display = h("input", { name: "display_name", autocomplete: "nickname", maxlength: 64, "data-testid": "auth-display" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "auth-password" });
  const displayRow = h("label", { class: "field", hidden: true }, h("span", {}, t("auth.display")), display);
  const submit = h("button", { class: "btn primary wide", type: "submit", "data-testid": "auth-submit" }, t("auth.login"));
  const tabLogin = h("button", { type: "button", role: "tab", class: "tab", "aria-selected": "true", "data-testid": "auth-tab-login", onclick: () => mode(false) }, t("auth.login"));
  const tabSignup = h("button", { type: "button", role: "tab", class: "tab", "aria-selected": "false", "data-testid": "auth-tab-signup", onclick: () => mode(true) }, t("auth.signup"));
  const hint = h("p", { class: "hint", hidden: true }, t("auth.rules"));
  function mode(s) {
    signup = s;
    tabLogin.setAttribute("aria-selected", String(!s));
    tabSignup.setAttribute("aria-selected", String(s));
    displayRow.hidden = !s;
    hint.hidden = !s;
    display.required = s;
    password.autocomplete = s ? "new-password" : "current-password";
    submit.textContent = s ? t("auth.signup") : t("auth.login");
    err.textContent = "";
  }
  const form = h("form", {
    class: "auth-form",
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      err.textContent = "";
      try {
        if (signup) await api.signup(username.value, password.value, display.value);
        const r = await api.login(username.value, password.value);
        session.token = r.token;
        state.me = r.user;
        await start();
      } catch (e2) {
        err.textContent = errorText(e2);
        submit.disabled = false;
      }
    },
  },
  h("label", { class: "field" }, h("span", {}, t("auth.username")), username),
  displayRow,
  h("label", { class: "field" }, h("span", {}, t("auth.password")), password),
  hint, submit, err);
  root.replaceChildren(h("main", { class: "auth" }, h("div", { class: "auth-card" },
    h("div", { class: "brand big" }, h("img", { src: "/assets/icon.svg", alt: "", width: 40, height: 40 }), h("span", {}, "모임"), h("small", {}, "Moim")),
    h("p", { class: "tagline" }, t("app.tagline")),
    h("div", { class: "tabs", role: "tablist" }, tabLogin, tabSignup),
    form,
    h("div", { class: "row center" }, langToggle()))));
  username.focus();
}

let shell;

async function start() {
  const side = h("aside", { class: "sidebar" });
  const main = h("main", { class: "chat" });
  const dues = h("section", { class: "dues", "aria-label": t("dues.title") });
  const banner = h("div", { class: "banner", role: "status", hidden: true, "data-testid": "offline-banner" }, t("offline"));
  shell = h("div", { class: "shell", "data-view": "list" }, side, main, dues);
  root.replaceChildren(banner, shell);
  mountSidebar(side, { logout: () => logout(""), refresh: refreshRooms });
  state.socket = new Socket({
    token: session.token,
    me: state.me,
    on: {
      message: onMessage,
      deleted: onDeleted,
      read: onRead,
      typing: (ev) => {
        if (!state.typing.has(ev.room)) state.typing.set(ev.room, new Map());
        state.typing.get(ev.room).set(ev.user, Date.now() + 5000);
        emit("typing", ev);
      },
      presence: (ev) => {
        state.presence.set(ev.user, ev.online);
        emit("presence", ev);
      },
      status: (online) => {
        state.online = online;
        clearTimeout(bannerTimer);
        // A quick reconnect (a node restarting) should not flash a banner.
        if (online) banner.hidden = true;
        else bannerTimer = setTimeout(() => (banner.hidden = false), 800);
        emit("status", online);
      },
      failed: (frame, ev) => {
        toast(ev.message || t("chat.failed"), "error");
        emit("failed", { frame, error: ev });
      },
      unknownRoom: () => refreshSoon(),
      club: onClub,
      authCheck: () => api.me().catch(() => {}),
    },
  });
  // Rooms are listed (seeding each one's seq) before the socket connects,
  // so its first sync asks only for what is newer.
  await refreshRooms().catch((e) => toast(errorText(e), "error"));
  state.socket.connect();
  window.addEventListener("hashchange", route);
  window.addEventListener("focus", () => refreshSoon());
  // Being added to a room sends nothing until its first message: look
  // for new rooms now and then too.
  setInterval(() => document.visibilityState === "visible" && refreshSoon(), 60000);
  // Back from a payment provider's window: confirm before showing the
  // dues panel the top-up started from.
  await finishCheckout();
  route();
}

let bannerTimer;
let refreshTimer;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshRooms().catch((e) => toast(errorText(e), "error")), 150);
}

// refreshRooms lists the user's rooms and starts new ones at their newest
// message; the socket then syncs them from there.
async function refreshRooms() {
  const list = await api.rooms();
  const fresh = [];
  const ids = new Set();
  for (const r of list) {
    ids.add(r.id);
    const old = state.rooms.get(r.id);
    const top = r.last_message ? r.last_message.seq : 0;
    const room = Object.assign(old || {}, r);
    room.latest = Math.max(old ? old.latest : 0, top);
    room.myRead = Math.max(old ? old.myRead : 0, top - (r.unread || 0));
    if (old && old.last && (!r.last_message || old.last.seq > r.last_message.seq)) room.last = old.last;
    else room.last = r.last_message || null;
    state.rooms.set(r.id, room);
    if (state.socket && !state.socket.lastSeq.has(r.id)) fresh.push(r.id);
    if (state.socket) state.socket.seed(r.id, top);
  }
  for (const id of state.rooms.keys()) {
    if (!ids.has(id)) state.rooms.delete(id);
  }
  if (state.socket && fresh.length) state.socket.sync(fresh);
  emit("rooms");
  if (state.current && !state.rooms.has(state.current)) location.hash = "#/";
}

function onMessage(m) {
  roomMsgs(m.room).set(m.seq, m);
  const r = state.rooms.get(m.room);
  if (r) {
    if (m.seq > r.latest && m.seq > r.myRead && m.from !== state.me.id && mentionsMe(m)) r.unread_mentions = (r.unread_mentions || 0) + 1;
    r.latest = Math.max(r.latest, m.seq);
    if (!r.last || m.seq >= r.last.seq) r.last = m;
  }
  emit("msg", m);
  emit("rooms");
}

function onDeleted(ev) {
  const m = roomMsgs(ev.room).get(ev.seq);
  if (m) Object.assign(m, { body: "", deleted: true });
  const r = state.rooms.get(ev.room);
  if (r && r.last && r.last.seq === ev.seq) r.last = { ...r.last, body: "", deleted: true };
  emit("deleted", ev);
  emit("rooms");
}

function onRead(ev) {
  if (!state.reads.has(ev.room)) state.reads.set(ev.room, new Map());
  const reads = state.reads.get(ev.room);
  reads.set(ev.user, Math.max(reads.get(ev.user) || 0, ev.seq));
  const r = state.rooms.get(ev.room);
  if (r && ev.user === state.me.id) {
    r.myRead = Math.max(r.myRead, ev.seq);
    // Mentions below the new position are read; the list recounts the rest.
    if (r.unread_mentions) {
      if (r.myRead >= r.latest) r.unread_mentions = 0;
      else refreshSoon();
    }
    emit("rooms");
  }
  emit("read", ev);
}

// onClub applies edits, notices, invitations, removals (club.js) and
// deleted attachments (files.js).
function onClub(ev) {
  const r = state.rooms.get(ev.room);
  switch (ev.type) {
    case "edited": {
      const m = roomMsgs(ev.room).get(ev.seq);
      if (m) applyEdit(m, ev);
      if (r && r.last && r.last.seq === ev.seq) r.last = { ...r.last, body: ev.body, edited_at: ev.edited_at };
      if (r && r.notice && r.notice.seq === ev.seq) r.notice = { ...r.notice, body: ev.body };
      emit("edited", ev);
      emit("notice", ev.room);
      emit("rooms");
      break;
    }
    case "notice":
      if (r) r.notice = ev.notice || null;
      emit("notice", ev.room);
      break;
    case "invitation":
      window.dispatchEvent(new CustomEvent("moim:invitation", { detail: ev.invitation }));
      break;
    case "removed":
      refreshSoon();
      break;
    case "attachment_deleted":
      if (ev.attachment && ev.attachment.id) forget(ev.attachment.id);
      break;
  }
}

let chat = { room: 0, unmount: () => {} };
let panel = { key: "", unmount: () => {} };
const panels = { dues: mountDues, admin: mountAdmin };

// route shows what the fragment names: the list, a room, a room's dues
// or its members and settings (both in the side panel).
function route() {
  const invite = /^#\/invite\/([A-Za-z0-9_-]{1,32})$/.exec(location.hash);
  if (invite) {
    chat.unmount();
    panel.unmount();
    chat = { room: -1, unmount: () => {} };
    panel = { key: "", unmount: () => {} };
    state.current = 0;
    shell.dataset.view = "chat";
    shell.classList.remove("with-dues");
    joinPage(shell.children[1], invite[1], refreshRooms);
    shell.children[2].replaceChildren();
    emit("route");
    return;
  }
  const m = /^#\/room\/(\d+)(?:\/(dues|admin))?$/.exec(location.hash);
  const room = m ? Number(m[1]) : 0;
  if (room && !state.rooms.has(room)) {
    refreshRooms().then(() => {
      if (state.rooms.has(room)) route();
      else location.hash = "#/";
    }, (e) => toast(errorText(e), "error"));
    return;
  }
  state.current = room;
  const which = m && m[2] && !state.rooms.get(room).direct ? m[2] : "";
  state.dues = which === "dues";
  shell.dataset.view = !room ? "list" : which ? "dues" : "chat";
  shell.classList.toggle("with-dues", !!which);
  const [, main, side] = shell.children;
  if (chat.room !== room) {
    chat.unmount();
    chat = room ? { room, unmount: mountChat(main, room) } : { room: 0, unmount: () => {} };
    if (!room) main.replaceChildren(h("div", { class: "empty" }, h("img", { src: "/assets/icon.svg", alt: "", width: 64, height: 64 }), h("p", {}, t("chat.pick"))));
  }
  const key = which ? `${which}/${room}` : "";
  if (panel.key !== key) {
    panel.unmount();
    panel = which ? { key, unmount: panels[which](side, room) } : { key: "", unmount: () => {} };
    if (!which) side.replaceChildren();
    side.setAttribute("aria-label", which === "admin" ? t("admin.title") : t("dues.title"));
  }
  emit("route");
}

function logout(notice) {
  if (state.socket) state.socket.stop();
  session.token = "";
  if (notice) sessionStorage.setItem(NOTICE, notice);
  // A fresh page drops every room's state with the session.
  location.replace(location.pathname);
}
