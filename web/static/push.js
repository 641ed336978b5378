// The installable app's side of the client: the service worker (offline
// shell, notifications), push opt-in and each room's mute toggle.
import { api } from "./api.js";
import { state, emit } from "./state.js";
import { h, icon, toast, errorText } from "./ui.js";
import { t } from "./i18n.js";

// registerWorker installs /sw.js (scope /) and gives it the words it
// shows in notifications, in the reader's language. Browsers without
// service workers (or pages not on https/localhost) simply go without.
export async function registerWorker() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    const ready = await navigator.serviceWorker.ready;
    const words = { invitation: t("push.invitation"), more: t("push.more"), mention: t("push.mention"), app: t("app.title") };
    (ready.active || reg.active)?.postMessage({ type: "words", words });
    return reg;
  } catch (err) {
    console.warn("service worker not registered", err);
    return null;
  }
}

const pushable = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

// base64url → bytes, for applicationServerKey.
function keyBytes(s) {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

async function currentSubscription() {
  const reg = await navigator.serviceWorker.ready;
  return { reg, sub: await reg.pushManager.getSubscription() };
}

// enable asks for permission (this runs from the button's click, a user
// gesture, as browsers require), subscribes with the node's VAPID key and
// gives the node the subscription.
async function enable() {
  if ((await Notification.requestPermission()) !== "granted") throw new Error(t("push.denied"));
  const { public_key: key } = await api.vapidKey();
  const { reg, sub: old } = await currentSubscription();
  let sub = old;
  // A subscription made with another key (the node's keys changed)
  // cannot be used: replace it.
  if (sub && sub.options.applicationServerKey && new Uint8Array(sub.options.applicationServerKey).join() !== keyBytes(key).join()) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  const j = sub.toJSON();
  await api.subscribePush({ endpoint: j.endpoint, keys: { p256dh: j.keys.p256dh, auth: j.keys.auth } });
}

async function disable() {
  const { sub } = await currentSubscription();
  if (!sub) return;
  await api.unsubscribePush(sub.endpoint).catch((e) => {
    if (e.status !== 404) throw e;
  });
  await sub.unsubscribe();
}

// pushButton turns notifications on or off for this browser; hidden where
// the browser cannot receive pushes.
export function pushButton() {
  const btn = h("button", { class: "btn push-toggle", type: "button", "data-testid": "push-toggle", hidden: !pushable() });
  // An icon with its words as the label, so the sidebar's row still fits.
  const show = (on) => {
    btn.setAttribute("aria-pressed", String(on));
    btn.setAttribute("aria-label", on ? t("push.disable") : t("push.enable"));
    btn.title = btn.getAttribute("aria-label");
    btn.replaceChildren(icon(on ? "bell" : "bellOff"));
  };
  show(false);
  if (pushable()) {
    currentSubscription().then(({ sub }) => show(!!sub && Notification.permission === "granted"), () => {});
  }
  btn.addEventListener("click", async () => {
    const on = btn.getAttribute("aria-pressed") === "true";
    btn.disabled = true;
    try {
      if (on) await disable();
      else await enable();
      show(!on);
      toast(on ? t("push.off") : t("push.on"));
    } catch (err) {
      toast(err.status !== undefined ? errorText(err) : err.message || t("push.failed"), "error");
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

// muteButton mutes or unmutes a room's notifications for me; a muted room
// still notifies what names me (a mention, my dues).
export function muteButton(room) {
  const r = state.rooms.get(room);
  const btn = h("button", { class: "btn ghost mute-btn", type: "button", "data-testid": "mute-toggle" });
  // On a phone only the icon shows: the label keeps the words.
  const show = (muted) => {
    btn.setAttribute("aria-pressed", String(muted));
    btn.setAttribute("aria-label", muted ? t("push.unmute") : t("push.mute"));
    btn.title = muted ? t("push.mutedHint") : t("push.unmutedHint");
    btn.replaceChildren(icon(muted ? "bellOff" : "bell"), h("span", {}, muted ? t("push.unmute") : t("push.mute")));
  };
  show(!!(r && r.muted));
  btn.addEventListener("click", async () => {
    const muted = btn.getAttribute("aria-pressed") !== "true";
    btn.disabled = true;
    try {
      const v = await (muted ? api.mute(room) : api.unmute(room));
      const cur = state.rooms.get(room);
      if (cur) cur.muted = v.muted;
      show(v.muted);
      emit("rooms");
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

// reconnecting is the screen an offline start shows (the shell came from
// the service worker's cache): it retries when the browser is back online
// and every few seconds, and calls retry once the node answers.
export function reconnecting(root, retry) {
  root.replaceChildren(h("main", { class: "auth" }, h("div", { class: "auth-card", role: "status", "data-testid": "reconnecting" },
    h("div", { class: "brand big" }, h("img", { src: "/assets/icon.svg", alt: "", width: 40, height: 40 }), h("span", {}, "모임"), h("small", {}, "Moim")),
    h("p", {}, h("strong", {}, t("push.reconnecting"))),
    h("p", { class: "hint" }, t("push.reconnectingHint")),
    h("button", { class: "btn primary", type: "button", "data-testid": "reconnect-now", onclick: () => again() }, t("retry")))));
  let timer;
  const again = () => {
    clearTimeout(timer);
    window.removeEventListener("online", again);
    retry();
  };
  window.addEventListener("online", again);
  timer = setTimeout(again, 5000);
}
