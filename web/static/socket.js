// Socket is the protocol v1 client of docs/PROTOCOL.md section 5: it
// applies each room's messages once and in seq order, fills gaps with
// sync, reconnects with jittered backoff and resends unacknowledged sends
// with their original cid, so a flaky network neither loses nor doubles a
// message.
import { uuid } from "./ui.js";

const SYNC_PAGE = 500;
const SYNC_ROOMS = 200;
const ACK_TIMEOUT = 10000;
const PING_EVERY = 25000;
const SILENCE = 60000; // no frame for this long: the connection is dead

export class Socket {
  // on: {message(msg), deleted(ev), read(ev), typing(ev), presence(ev),
  // status(online), failed(frame, error), unknownRoom(room), authCheck()}.
  constructor({ token, me, on }) {
    this.token = token;
    this.me = me;
    this.on = on;
    this.lastSeq = new Map(); // room -> every seq 1..lastSeq applied
    this.buffered = new Map(); // room -> Map(seq -> msg) past a gap
    this.syncing = new Map(); // room -> from of the sync in flight
    this.pending = new Map(); // cid -> {frame, at, held, out}
    // Past its capacity the node refuses sends as busy and takes a
    // connection's first send after the wait it named (PROTOCOL.md, error
    // busy). From the first refusal until nothing is held any more, sends
    // wait their turn (held, shown as sending) and go one at a time, the
    // oldest first: the next only once the one out (probe) is answered,
    // and after a refusal not before busyUntil, the end of the longest
    // wait named.
    this.busy = false;
    this.busyUntil = 0;
    this.busyTimer = null;
    this.probe = null;
    this.pendingKey = `moim.pending.${me.id}`;
    this.attempt = 0;
    this.ws = null;
    this.open = false;
    this.stopped = false;
    this.lastFrame = 0;
    this.loadPending();
    this.timer = setInterval(() => this.tick(), 2000);
    this.pinger = setInterval(() => this.keepalive(), PING_EVERY);
    this.onOnline = () => {
      if (!this.open) this.reconnectNow();
    };
    window.addEventListener("online", this.onOnline);
  }

  // seed starts a room at seq (its newest message when first listed): the
  // app pages older history over REST, so sync need not replay it.
  seed(room, seq) {
    if (!this.lastSeq.has(room)) this.lastSeq.set(room, seq);
  }

  // connect opens the socket with a single-use ticket (POST
  // /api/ws-ticket), so the token never appears in a URL.
  async connect() {
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    let ticket = null;
    try {
      const r = await fetch("/api/ws-ticket", { method: "POST", headers: { Authorization: `Bearer ${this.token}` } });
      if (r.ok) ticket = (await r.json()).ticket;
      else if (r.status === 401) this.on.authCheck();
    } catch {
      // offline: retry below
    }
    this.connecting = false;
    if (this.stopped) return;
    if (!ticket) {
      this.retryLater();
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    let ready = false;
    ws.onmessage = (e) => {
      this.lastFrame = Date.now();
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        return;
      }
      if (ev.type === "ready") ready = true;
      this.handle(ev);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      this.syncing.clear();
      this.on.status(false);
      if (this.stopped) return;
      // A refused upgrade looks like any other close, and 4001 says the
      // token was revoked: ask REST whether it is still good before
      // retrying forever.
      if ((!ready && this.attempt > 0) || e.code === 4001) this.on.authCheck();
      this.retryLater();
    };
  }

  retryLater() {
    const wait = Math.min(30000, 500 * 2 ** this.attempt++) * (0.5 + Math.random());
    this.retry = setTimeout(() => this.connect(), wait);
  }

  reconnectNow() {
    clearTimeout(this.retry);
    this.attempt = 0;
    if (this.ws) this.ws.close();
    else this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.timer);
    clearInterval(this.pinger);
    window.removeEventListener("online", this.onOnline);
    if (this.ws) this.ws.close(1000);
  }

  out(frame) {
    if (!this.open || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame, (k, v) => (k === "local" ? undefined : v)));
    return true;
  }

  // write sends a pending send's frame. One already out whose answer
  // never came (a lost connection, a timeout, a reload) goes marked as a
  // resend, so the server finds its cid in the message store even once
  // Redis has forgotten it (docs/PROTOCOL.md, idempotent sends).
  write(p) {
    if (p.out) p.frame.resend = true;
    if (!this.out(p.frame)) return false;
    p.out = true;
    return true;
  }

  // send posts a message; it is kept (across reloads too) and resent with
  // the same cid until the server acknowledges it.
  // attachment, when set, is an upload's metadata; the frame names its id
  // and keeps the rest for showing the pending message, and under
  // `local` (never sent) what the message's echo would carry, since the
  // ack may come first and then alone shows the message.
  send(room, body, replyTo, attachment) {
    const frame = { type: "send", room, cid: uuid(), body };
    if (replyTo) frame.reply_to = replyTo;
    if (attachment) {
      const { id, name, type, size, kind, width, height } = attachment;
      frame.attachment = id;
      frame.attachment_name = name;
      frame.local = { attachment: { id, name, type, size, kind, width, height } };
    }
    const p = { frame, at: Date.now(), held: this.busy, out: false };
    this.pending.set(frame.cid, p);
    this.savePending();
    if (!this.busy) this.write(p);
    return frame;
  }

  // refusedBusy holds a send the node refused as busy and the sends after
  // it until wait (ms) has passed.
  refusedBusy(p, wait) {
    const now = Date.now();
    p.held = true;
    p.at = now;
    if (this.probe === p.frame.cid) this.probe = null;
    this.busy = true;
    this.busyUntil = Math.max(this.busyUntil, now + wait);
    clearTimeout(this.busyTimer);
    this.busyTimer = setTimeout(() => {
      this.busyTimer = null;
      this.nextHeld();
    }, this.busyUntil - now);
  }

  // nextHeld sends the oldest held send once no wait is on and nothing
  // else is out; with none left the busy spell is over.
  nextHeld() {
    if (!this.busy || this.busyTimer || this.probe) return;
    for (const p of this.pending.values()) {
      if (!p.held) continue;
      if (this.write(p)) {
        p.held = false;
        p.at = Date.now();
        this.probe = p.frame.cid;
      }
      return; // offline: ready sends everything
    }
    this.busy = false;
  }

  // discard forgets a send the user gave up on.
  discard(cid) {
    this.pending.delete(cid);
    this.savePending();
    if (cid === this.probe) {
      this.probe = null;
      this.nextHeld();
    }
  }

  pendingIn(room) {
    return [...this.pending.values()].map((p) => p.frame).filter((f) => f.room === room);
  }

  read(room, seq) {
    this.out({ type: "read", room, seq });
  }

  typing(room) {
    this.out({ type: "typing", room });
  }

  remove(room, seq) {
    return this.out({ type: "delete", room, seq });
  }

  sync(rooms) {
    const todo = rooms.filter((r) => !this.syncing.has(r));
    for (let i = 0; i < todo.length; i += SYNC_ROOMS) {
      const req = {};
      for (const r of todo.slice(i, i + SYNC_ROOMS)) {
        req[r] = this.lastSeq.get(r) ?? 0;
        this.syncing.set(r, req[r]);
      }
      if (!this.out({ type: "sync", rooms: req })) for (const r of Object.keys(req)) this.syncing.delete(Number(r));
    }
  }

  // offer runs a message fetched over REST through the same path as live
  // ones, for those newer than what the socket has applied.
  offer(m) {
    this.onMsg(m);
  }

  onMsg(m) {
    if (!this.lastSeq.has(m.room)) {
      // A room this client has not listed yet (just added to it): the
      // app lists it and seeds its seq, and shows this message from REST.
      this.on.unknownRoom(m.room);
      return;
    }
    const last = this.lastSeq.get(m.room);
    if (m.seq <= last) return;
    if (!this.buffered.has(m.room)) this.buffered.set(m.room, new Map());
    const buf = this.buffered.get(m.room);
    if (m.seq > last + 1) {
      buf.set(m.seq, m);
      this.sync([m.room]);
      return;
    }
    for (let next = m; next; next = buf.get(next.seq + 1)) {
      buf.delete(next.seq);
      this.lastSeq.set(m.room, next.seq);
      if (next.from === this.me.id && this.pending.delete(next.cid)) this.savePending();
      this.on.message(next);
    }
  }

  handle(ev) {
    switch (ev.type) {
      case "ready":
        this.attempt = 0;
        this.open = true;
        this.on.status(true);
        this.sync([...this.lastSeq.keys()]);
        // A new connection owes nothing to the old one's busy spell.
        this.busy = false;
        this.busyUntil = 0;
        clearTimeout(this.busyTimer);
        this.busyTimer = null;
        this.probe = null;
        for (const p of this.pending.values()) {
          p.at = Date.now();
          p.held = false;
          this.write(p);
        }
        break;
      case "msg":
        this.onMsg(ev);
        break;
      case "ack": {
        if (ev.cid === this.probe) {
          this.probe = null;
          this.nextHeld();
        }
        const p = this.pending.get(ev.cid);
        if (!p) break;
        this.pending.delete(ev.cid);
        this.savePending();
        // The msg travels apart from the ack and may have been missed:
        // the ack alone is enough to show the message.
        const f = p.frame;
        const m = { type: "msg", room: f.room, seq: ev.seq, from: this.me.id, name: this.me.display_name, body: f.body, cid: f.cid, ts: ev.ts, kind: "text" };
        if (f.reply_to) m.reply_to = f.reply_to;
        // Without it the sender's photo would never show: the echo that
        // follows has a seq already applied and is dropped.
        if (f.local && f.local.attachment) m.attachment = f.local.attachment;
        this.onMsg(m);
        break;
      }
      case "synced": {
        const from = this.syncing.get(ev.room);
        this.syncing.delete(ev.room);
        if (ev.seq - from >= SYNC_PAGE) this.sync([ev.room]);
        else if (this.buffered.get(ev.room)?.size) setTimeout(() => this.sync([ev.room]), 1000);
        break;
      }
      case "error":
        if (ev.cid && this.pending.has(ev.cid)) {
          const p = this.pending.get(ev.cid);
          // Refused before anything was stored; unavailable may have
          // been stored all the same (Redis failed mid-call).
          if (ev.code === "busy" || ev.code === "rate_limited") p.out = false;
          // Resend once the wait a rate_limited error names is over.
          if (ev.code === "rate_limited") p.at = Date.now() - ACK_TIMEOUT + (ev.retry_after_ms || 0);
          // Busy: the server is behind and stored nothing; the message
          // stays shown as sending and goes again, same cid, after the wait.
          else if (ev.code === "busy") this.refusedBusy(p, ev.retry_after_ms || 1000);
          else if (ev.code === "unavailable") p.at = 0;
          else {
            this.pending.delete(ev.cid);
            this.savePending();
            this.on.failed(p.frame, ev);
          }
          if (ev.code !== "busy" && ev.cid === this.probe) {
            this.probe = null;
            this.nextHeld();
          }
        } else if (ev.room && this.syncing.has(ev.room)) {
          this.syncing.delete(ev.room);
          if (ev.code === "unavailable") setTimeout(() => this.sync([ev.room]), 1000);
          else if (ev.code === "rate_limited") setTimeout(() => this.sync([ev.room]), ev.retry_after_ms || 1000);
        }
        break;
      case "deleted":
        this.on.deleted(ev);
        break;
      case "read":
        this.on.read(ev);
        break;
      case "typing":
        if (ev.user !== this.me.id) this.on.typing(ev);
        break;
      case "presence":
        this.on.presence(ev);
        break;
      case "edited":
      case "notice":
      case "invitation":
      case "removed":
      case "attachment_deleted":
        if (this.on.club) this.on.club(ev);
        break;
    }
  }

  // tick resends sends with no ack after ACK_TIMEOUT (or marked for a
  // retry by rate_limited/unavailable), with the same cid; in a busy
  // spell, whose sends go one at a time (nextHeld), only the one out.
  tick() {
    const now = Date.now();
    if (this.busy) {
      const p = this.pending.get(this.probe);
      if (p && now - p.at > ACK_TIMEOUT && this.write(p)) p.at = now;
      return;
    }
    for (const p of this.pending.values()) {
      if (now - p.at > ACK_TIMEOUT && this.write(p)) p.at = now;
    }
  }

  keepalive() {
    if (!this.open) return;
    if (Date.now() - this.lastFrame > SILENCE) {
      this.ws.close(); // dead without a close (sleep, lost Wi-Fi): start over
      return;
    }
    this.out({ type: "ping" });
  }

  loadPending() {
    try {
      for (const frame of JSON.parse(localStorage.getItem(this.pendingKey) || "[]")) {
        this.pending.set(frame.cid, { frame, at: 0, out: true }); // it may have gone out before the reload
      }
    } catch {
      localStorage.removeItem(this.pendingKey);
    }
  }

  savePending() {
    const frames = [...this.pending.values()].map((p) => p.frame);
    if (frames.length) localStorage.setItem(this.pendingKey, JSON.stringify(frames));
    else localStorage.removeItem(this.pendingKey);
  }
}
