// The installable app and push notifications in Chromium: the service
// worker registers for the whole app, the manifest is valid with its
// icons, a room's mute toggles, push opt-in posts a subscription, a
// message to a member who is away is pushed to it (encrypted by the node,
// decrypted here per RFC 8291) and the service worker shows it as a
// notification, and an offline reload opens to "reconnecting".
//
// Chromium's own push service (Google's) cannot be reached from a test
// machine, so PushManager.subscribe is replaced by one that hands out a
// subscription to a receiver in this process, with keys made here; the
// node's encryption and posting, the service worker's notification and the
// client's opt-in are the real ones. The node runs with MOIM_PUSH_LOOPBACK
// so it may post to that loopback receiver.
import { createServer } from "node:http";
import { createECDH, createHmac, createDecipheriv, randomBytes } from "node:crypto";
import {
  runFlow, open, browser, signup, userId, say, shot, check, until, expectAttr, expectText, step, user, base, DESKTOP, PHONE,
} from "./kit.mjs";

const b64u = (buf) => Buffer.from(buf).toString("base64url");

// hkdf is RFC 5869 with SHA-256 (one block is all RFC 8291 needs).
function hkdf(salt, ikm, info, len) {
  const prk = createHmac("sha256", salt).update(ikm).digest();
  return createHmac("sha256", prk).update(Buffer.concat([info, Buffer.from([1])])).digest().subarray(0, len);
}

// decrypt opens an aes128gcm push body with the subscription's keys.
function decrypt(ecdh, auth, body) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPub = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  const shared = ecdh.computeSecret(asPub);
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), ecdh.getPublicKey(), asPub]);
  const ikm = hkdf(auth, shared, info, 32);
  const cek = hkdf(salt, ikm, Buffer.from("Content-Encoding: aes128gcm\0"), 16);
  const nonce = hkdf(salt, ikm, Buffer.from("Content-Encoding: nonce\0"), 12);
  const d = createDecipheriv("aes-128-gcm", cek, nonce);
  d.setAuthTag(record.subarray(record.length - 16));
  let plain = Buffer.concat([d.update(record.subarray(0, record.length - 16)), d.final()]);
  let end = plain.length;
  while (end > 0 && plain[end - 1] === 0) end--;
  if (plain[end - 1] !== 2) throw new Error("no last-record delimiter");
  return JSON.parse(plain.subarray(0, end - 1).toString("utf8"));
}

// A local push service: every post is decrypted and queued.
const ecdh = createECDH("prime256v1");
ecdh.generateKeys();
const auth = randomBytes(16);
const received = [];
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    try {
      if (!/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/.test(req.headers.authorization || "")) throw new Error("no VAPID authorization");
      received.push(decrypt(ecdh, auth, Buffer.concat(chunks)));
      res.writeHead(201).end();
    } catch (err) {
      received.push({ error: String(err) });
      res.writeHead(400).end();
    }
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const endpoint = `http://127.0.0.1:${receiver.address().port}/push/alice`;

// fakePush replaces the browser's push service with the receiver above.
function fakePush({ endpoint, p256dh, auth }) {
  let sub = null;
  const make = () => ({
    endpoint,
    options: { applicationServerKey: null },
    toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
    unsubscribe: async () => { sub = null; return true; },
  });
  PushManager.prototype.subscribe = async function (opts) {
    if (!opts || !opts.applicationServerKey || opts.userVisibleOnly !== true) throw new Error("subscribe without a VAPID key");
    sub = make();
    return sub;
  };
  PushManager.prototype.getSubscription = async () => sub;
}

// call is a REST call from a page, as its logged-in user.
const call = (page, method, path, body) => page.evaluate(async ([method, path, body]) => {
  const r = await fetch(path, {
    method, body: body ? JSON.stringify(body) : undefined,
    headers: { Authorization: "Bearer " + localStorage.getItem("moim.token"), "Content-Type": "application/json" },
  });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}, [method, path, body]);

const offlineNoise = (m) => /ERR_INTERNET_DISCONNECTED|Failed to load resource|WebSocket connection/.test(m.text());

await runFlow("push.mjs", { expectedError: offlineNoise }, async () => {
  const alice = user("alice", "Alice 앨리스");
  const bob = user("bob", "Bob 밥");
  const actx = await browser.newContext({ ...DESKTOP, permissions: ["notifications"] });
  await actx.addInitScript(fakePush, { endpoint, p256dh: b64u(ecdh.getPublicKey()), auth: b64u(auth) });
  const bctx = await browser.newContext(PHONE);
  const a = await open(actx, "alice");
  const b = await open(bctx, "bob");

  step("the service worker registers for the whole app");
  await signup(a, alice);
  await signup(b, bob);
  const sw = await a.evaluate(async () => {
    const r = await navigator.serviceWorker.ready;
    return { script: r.active && r.active.scriptURL, scope: r.scope, caches: await caches.keys() };
  });
  await check(sw.script === base + "/sw.js" && sw.scope === base + "/", `service worker ${JSON.stringify(sw)}`);
  await until("the shell cache is filled", async () => {
    const got = await a.evaluate(async () => {
      const names = (await caches.keys()).filter((n) => n.startsWith("moim-shell-"));
      if (names.length !== 1) return names;
      return (await (await caches.open(names[0])).keys()).map((r) => new URL(r.url).pathname);
    });
    return { ok: got.includes("/") && got.includes("/assets/app.js") && got.includes("/assets/push.js"), got };
  });

  step("the manifest is valid and its icons load");
  const manifest = await a.evaluate(async () => {
    const link = document.querySelector('link[rel="manifest"]');
    const m = await (await fetch(link.href)).json();
    const sizes = [];
    for (const i of m.icons.filter((i) => i.type === "image/png")) {
      const img = new Image();
      img.src = i.src;
      await img.decode();
      sizes.push(`${i.sizes}=${img.naturalWidth}x${img.naturalHeight}`);
    }
    return { ...m, sizes };
  });
  await check(manifest.name && manifest.short_name && manifest.start_url === "/" && manifest.display === "standalone" && manifest.theme_color,
    `manifest ${JSON.stringify(manifest)}`);
  await check(manifest.sizes.includes("192x192=192x192") && manifest.sizes.includes("512x512=512x512"), `icons ${manifest.sizes}`);

  step("Alice and Bob share a room");
  const aliceId = await userId(a);
  const bobId = await userId(b);
  await call(b, "POST", "/api/contacts", { username: alice.username });
  const room = (await call(a, "POST", "/api/rooms", { name: "알림 모임 Push Club", member_ids: [bobId] })).body;
  await check(room.id > 0, `room ${JSON.stringify(room)}`);
  await a.reload();
  await b.reload();
  await a.goto(`${base}/#/room/${room.id}`);
  await b.goto(`${base}/#/room/${room.id}`);
  await expectText(a.getByTestId("chat-title"), "Push Club");
  await expectText(b.getByTestId("chat-title"), "Push Club");

  step("Alice mutes and unmutes the room");
  const mute = a.getByTestId("mute-toggle");
  await expectAttr(mute, "aria-pressed", "false");
  await mute.click();
  await expectAttr(mute, "aria-pressed", "true");
  let list = (await call(a, "GET", "/api/rooms")).body.rooms;
  await check(list.find((r) => r.id === room.id).muted === true, "the room list shows the room muted");
  await shot(a, "mute-desktop.png");
  await mute.click();
  await expectAttr(mute, "aria-pressed", "false");
  list = (await call(a, "GET", "/api/rooms")).body.rooms;
  await check(list.find((r) => r.id === room.id).muted === false, "the room list shows the room unmuted");

  step("Bob mutes and unmutes it on his phone, in Korean");
  const bmute = b.getByTestId("mute-toggle");
  await bmute.click();
  await expectAttr(bmute, "aria-pressed", "true");
  await expectAttr(bmute, "aria-label", "방 알림 켜기");
  await shot(b, "mute-phone.png");
  await bmute.click();
  await expectAttr(bmute, "aria-pressed", "false");

  step("Alice turns notifications on (permission granted, subscription posted)");
  const toggle = a.getByTestId("push-toggle");
  await expectAttr(toggle, "aria-pressed", "false");
  await toggle.click();
  await expectAttr(toggle, "aria-pressed", "true");

  step("Alice goes away; Bob's message is pushed to her, encrypted");
  await a.close();
  await until("Alice is offline", async () => {
    const p = (await call(b, "GET", `/api/rooms/${room.id}/presence`)).body.members.find((m) => m.user_id === aliceId);
    return { ok: p && !p.online, got: p };
  });
  await say(b, "내일 7시 출발! see you at 7");
  await until("a push reaches Alice's subscription", async () => ({ ok: received.length > 0, got: received }), 15000);
  const push = received[0];
  await check(!push.error && push.type === "message" && push.room === room.id && push.body === "내일 7시 출발! see you at 7" &&
    push.name === bob.display && push.url === `/#/room/${room.id}`, `push ${JSON.stringify(push)}`);

  step("the service worker shows it as a notification");
  const a2 = await open(actx, "alice2");
  const cdp = await actx.newCDPSession(a2);
  const registered = new Promise((resolve) => cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => {
    const r = e.registrations.find((x) => x.scopeURL === base + "/" && !x.isDeleted);
    if (r) resolve(r.registrationId);
  }));
  await cdp.send("ServiceWorker.enable");
  const registrationId = await registered;
  // Delivered once the worker is active: DevTools drops a push message
  // that reaches a registration whose worker is still starting (seen at
  // load 40), where a push service would retry. One redelivery after 5 s
  // stands for that retry; the tag keeps it one notification.
  await a2.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const deliver = () => cdp.send("ServiceWorker.deliverPushMessage", { origin: base, registrationId, data: JSON.stringify(push) });
  await deliver();
  const retryAt = Date.now() + 5000;
  let retried = false;
  let shown;
  await until("the notification is shown", async () => {
    shown = await a2.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
      .map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url })));
    if (!shown.length && !retried && Date.now() > retryAt) {
      retried = true;
      await deliver();
    }
    return { ok: shown.length > 0, got: shown };
  }, 15000);
  await check(shown[0].title.includes("Push Club") && shown[0].body.includes("see you at 7") && shown[0].tag === `room-${room.id}` &&
    shown[0].url === `/#/room/${room.id}`, `notification ${JSON.stringify(shown)}`);
  await expectText(a2.getByTestId("me-name"), alice.display);

  step("offline, the app opens from the cache to 'reconnecting'");
  await actx.setOffline(true);
  await a2.reload();
  await a2.getByTestId("reconnecting").waitFor();
  await shot(a2, "offline-desktop.png");
  await actx.setOffline(false);
  await expectText(a2.getByTestId("me-name"), alice.display, 15000);
});
