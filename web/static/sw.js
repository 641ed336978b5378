// Moim's service worker: keeps the app shell for offline starts (the app
// then shows "reconnecting" until the node answers) and turns pushes into
// notifications. The node fills in SHELL_VERSION (a hash of the client's
// files) and SHELL_FILES when it serves this file, so every new client
// gets a new cache and the old one is deleted.
const VERSION = "__SHELL_VERSION__";
const FILES = __SHELL_FILES__;
const CACHE = "moim-shell-" + VERSION;
const PREFS = "moim-prefs";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("moim-shell-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The shell is fetched from the network first (a new node's client shows
// at once) and from the cache when the network fails. The API and the
// WebSocket are never cached.
self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  const shell = req.mode === "navigate" ? "/" : FILES.includes(url.pathname) ? url.pathname : null;
  if (!shell) return;
  event.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(shell, copy)));
      }
      return res;
    } catch (err) {
      const hit = await caches.match(shell, { cacheName: CACHE });
      if (hit) return hit;
      throw err;
    }
  })());
});

// The page sends its words for notifications in the reader's language
// (i18n.js); they are kept for pushes that arrive with no page open.
self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "words") {
    event.waitUntil(caches.open(PREFS).then((c) => c.put("/words", new Response(JSON.stringify(event.data.words)))));
  }
});

const ENGLISH = { invitation: "{0} invited you to {1}", more: "{0} new messages", mention: "mentioned you", app: "Moim" };

async function words() {
  const res = await caches.match("/words", { cacheName: PREFS });
  return res ? { ...ENGLISH, ...(await res.json()) } : ENGLISH;
}

const fill = (s, ...args) => s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));

// Payloads: docs/PROTOCOL.md, Push notifications.
self.addEventListener("push", (event) => {
  event.waitUntil((async () => {
    let p = {};
    try {
      p = event.data ? event.data.json() : {};
    } catch {
      p = {};
    }
    const w = await words();
    let title = p.room_name || p.name || w.app;
    let body = "";
    if (p.type === "invitation") {
      title = w.app;
      body = fill(w.invitation, p.name || "", p.room_name || "");
    } else if (p.type === "message") {
      body = p.kind === "text" && p.name ? `${p.name}: ${p.body || ""}` : p.body || "";
      if (p.mention) title = `${title} · ${w.mention}`;
      if (p.count > 1) body = `${fill(w.more, p.count)}\n${body}`;
    }
    await self.registration.showNotification(title, {
      body,
      icon: "/assets/icon-192.png",
      badge: "/assets/icon-192.png",
      // One notification per room: a newer push replaces the older one.
      tag: p.room ? "room-" + p.room : "moim",
      renotify: true,
      data: { url: p.url || "/" },
    });
  })());
});

// A click opens the room: in a window of the app already open, or a new one.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin).href;
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const c of open) {
      if (new URL(c.url).origin === self.location.origin) {
        await c.focus();
        return c.navigate(url);
      }
    }
    return self.clients.openWindow(url);
  })());
});
