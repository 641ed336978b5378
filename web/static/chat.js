// The chat view of one room: messages in seq order (history paged in as
// the user scrolls up), the composer with reply quoting, typing and read
// receipts, presence dots, and fee events as cards.
import { api } from "./api.js";
import { state, listen, roomMsgs, readBy, memberName, isAdmin, emit } from "./state.js";
import { h, icon, confirm, toast, errorText, clock, day, won, period, calendarDay } from "./ui.js";
import { t } from "./i18n.js";
import { systemText, mentionsMe, bodyWithMentions, canEdit, editMessage, pin, noticeBanner, mayInvite, inviteDialog } from "./club.js";
import { upload, view as attachmentView, size as byteSize, MAX_SIZE, isGone, removeAttachment } from "./files.js";
import { muteButton } from "./push.js";
import { searchMessages } from "./search.js";

const PAGE = 50;
const CONTEXT = 25; // messages shown before one found by search
const CONTEXT_PAGES = 20;
const TYPING_EVERY = 3000;
const GROUP_MS = 5 * 60 * 1000; // same sender within this: one name above
const minute = (ts) => Math.floor(ts / 60000);

export function mountChat(el, room) {
  const r = state.rooms.get(room);
  const msgs = roomMsgs(room);
  const rendered = new Map(); // seq -> element
  const pendingEls = new Map(); // cid -> element
  let replyTo = 0;
  let loadingOlder = false;
  let lastTyping = 0;

  const edge = h("div", { class: "history-edge", "data-testid": "history-edge" });
  const list = h("div", { class: "msg-list" });
  const pendingBox = h("div", { class: "msg-list" });
  // Focusable, so the history scrolls with the keyboard too.
  const scroller = h("div", { class: "messages", "data-testid": "messages", role: "log", "aria-live": "polite", "aria-label": r.name, tabindex: 0 }, edge, list, pendingBox);
  const newPill = h("button", { type: "button", class: "new-pill", hidden: true, onclick: () => toBottom() }, icon("down"), t("chat.newBelow"));
  const typingEl = h("div", { class: "typing", "data-testid": "typing" });
  const replyBar = h("div", { class: "reply-bar", hidden: true });
  const input = h("textarea", { rows: 1, maxlength: 4000, placeholder: t("chat.placeholder"), "aria-label": t("chat.placeholder"), "data-testid": "composer" });
  const sendBtn = h("button", { type: "submit", class: "btn primary send", "aria-label": t("chat.send"), "data-testid": "send" }, icon("send"), h("span", {}, t("chat.send")));
  // Attaching: the chosen file is previewed above the input until it is
  // sent (uploaded first, with its progress) or removed.
  let chosen = null; // {file, url}
  const fileInput = h("input", { type: "file", hidden: true, "data-testid": "attach-input", onchange: () => choose(fileInput.files[0]) });
  const attachBtn = h("button", { type: "button", class: "icon-btn attach", "aria-label": t("file.attach"), title: t("file.attach"), "data-testid": "attach", onclick: () => fileInput.click() }, icon("attach"));
  const preview = h("div", { class: "attach-preview", hidden: true, "data-testid": "attach-preview", "aria-live": "polite" });
  const form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); send(); } }, replyBar, preview, h("div", { class: "composer-row" }, attachBtn, fileInput, input, sendBtn));
  const subtitle = h("div", { class: "chat-sub", "data-testid": "chat-sub" });
  const head = h("header", { class: "chat-head" },
    h("a", { class: "icon-btn back", href: "#/", "aria-label": t("back") }, icon("back")),
    h("div", { class: "chat-title" }, h("h1", { "data-testid": "chat-title" }, r.name), subtitle),
    h("button", { type: "button", class: "icon-btn", "aria-label": t("search.title"), "data-testid": "open-search", onclick: () => searchMessages(room) }, icon("search")),
    mayInvite(room) ? h("button", { type: "button", class: "btn", "data-testid": "open-invite", onclick: () => inviteDialog(room) }, t("club.invite")) : null,
    muteButton(room),
    r.direct ? null : h("a", { class: "icon-btn", href: `#/room/${room}/admin`, "aria-label": t("admin.title"), "data-testid": "open-admin" }, icon("people")),
    r.direct ? null : h("a", { class: "btn dues-btn", href: `#/room/${room}/dues`, "aria-label": t("dues.title"), "data-testid": "open-dues" }, icon("coin"), h("span", {}, t("dues.title"))));
  const notice = noticeBanner(room);
  el.replaceChildren(head, notice.el, h("div", { class: "chat-body" }, scroller, newPill), typingEl, form);

  // --- rendering ---

  function msgEl(m) {
    if (m.kind === "fee") return feeCard(m);
    if (m.kind !== "text") return h("div", { class: "sys", "data-seq": m.seq, "data-ts": m.ts, "data-testid": "system-msg", "data-event": (m.system && m.system.event) || "" }, h("div", { class: "day" }), h("p", {}, systemText(m, room)));
    const own = m.from === state.me.id;
    const el = h("div", {
      class: `msg${own ? " own" : ""}${m.deleted ? " deleted" : ""}${!m.deleted && mentionsMe(m) ? " mentioned" : ""}`,
      "data-seq": m.seq, "data-from": m.from, "data-ts": m.ts, "data-testid": "msg",
    },
    h("div", { class: "day" }),
    own ? null : h("div", { class: "sender" }, h("span", { class: "dot", "data-user": m.from }), h("span", { class: "name" }, m.name)),
    h("div", { class: "line" },
      h("div", { class: "bubble" },
        m.reply_to && !m.deleted ? quote(m.reply_to) : null,
        m.attachment && !m.deleted ? attachmentView(m.attachment) : null,
        m.body || m.deleted || !m.attachment ? h("div", { class: "body", "data-testid": "msg-body" }, m.deleted ? t("chat.deleted") : bodyWithMentions(m.body)) : null,
        m.edited_at && !m.deleted ? h("div", { class: "edited muted small", "data-testid": "edited" }, t("club.edited")) : null,
        m.deleted ? null : h("div", { class: "actions" },
          h("button", { type: "button", class: "act", "data-testid": "reply", onclick: () => startReply(m) }, icon("reply"), t("chat.reply")),
          canEdit(m) ? h("button", { type: "button", class: "act", "data-testid": "edit", onclick: () => editMessage(room, m) }, t("club.edit")) : null,
          isAdmin(room) ? h("button", { type: "button", class: "act", "data-testid": "pin", onclick: () => pin(room, m.seq) }, t("club.pin")) : null,
          // The file alone, for its uploader (or an admin): the message stays.
          m.attachment && !isGone(m.attachment.id) && (own || isAdmin(room)) ? h("button", {
            type: "button", class: "act", "data-testid": "delete-attachment", "data-attachment-delete": m.attachment.id,
            "aria-label": t("file.deleteLabel", m.attachment.name), onclick: () => removeAttachment(m.attachment),
          }, t("file.delete")) : null,
          own || isAdmin(room) ? h("button", { type: "button", class: "act", "data-testid": "delete", onclick: () => remove(m) }, icon("trash"), t("chat.delete")) : null)),
      h("div", { class: "info" },
        own ? h("span", { class: "readby", "data-testid": "read-by" }) : null,
        h("time", { datetime: new Date(m.ts).toISOString() }, clock(m.ts)))));
    if (own) setReadBy(el);
    // Touch screens have no hover: a tap on the bubble shows its actions.
    el.querySelector(".bubble").addEventListener("click", (e) => {
      if (!e.target.closest(".quote, .actions")) el.classList.toggle("show");
    });
    return el;
  }

  function quote(seq) {
    const q = h("button", { type: "button", class: "quote", "data-reply": seq, onclick: () => jump(seq) });
    fillQuote(q);
    return q;
  }

  function fillQuote(q) {
    const o = msgs.get(Number(q.dataset.reply));
    if (!o) {
      q.replaceChildren(h("span", { class: "quote-body" }, t("chat.earlier")));
      return;
    }
    q.dataset.resolved = "1";
    q.replaceChildren(h("span", { class: "quote-name" }, o.kind === "text" ? o.name : t("chat.system")),
      h("span", { class: "quote-body" }, o.deleted ? t("chat.deleted") : o.body));
  }

  // feeCard renders a fee event from its structured fields, in the
  // reader's language; the server's Korean body is the fallback for
  // events this client does not know.
  function feeCard(m) {
    const f = m.fee || {};
    const who = f.user ? memberName(room, f.user) : "";
    const amount = f.amount ? won(f.amount) : "";
    const texts = {
      dues: () => t("feeText.dues", who, amount, period(f.period)),
      spend: () => t("feeText.spend", amount, f.memo || ""),
      refund: () => t("feeText.refund", amount, who, period(f.period), f.memo || ""),
      reminder: () => t("feeText.reminder", period(f.period), amount, f.due_date ? calendarDay(f.due_date) : ""),
      transfer: () => t("feeText.transfer", memberName(room, f.from), amount, who) + (f.memo ? ` — ${f.memo}` : ""),
      autopay_failed: () => t("feeText.autopay_failed", who, period(f.period),
        (f.reason === "insufficient_funds" ? t("reason.insufficient_funds") : t("reason.other")) + " " + (f.retry ? t("retry.yes") : t("retry.no"))),
      autopay_cancelled: () => t("feeText.autopay_cancelled", who),
      dues_record: () => t("feeText.dues_record", who, period(f.period), amount),
      dues_waiver: () => t("feeText.dues_waiver", who, period(f.period)),
    };
    const text = texts[f.event] ? texts[f.event]() : m.body;
    // Only events that moved money show a signed amount; a failed auto-pay
    // or an off-wallet record moved none.
    const signs = { dues: "+", spend: "−", refund: "−", transfer: "" };
    const sign = signs[f.event];
    const facts = [];
    if (f.event === "reminder" && f.unpaid && f.unpaid.length) facts.push(t("fee.unpaid", f.unpaid.map((u) => memberName(room, u)).join(", ")));
    return h("div", { class: `card fee-${f.event || "other"}`, "data-seq": m.seq, "data-ts": m.ts, "data-testid": "fee-card", "data-event": f.event || "" },
      h("div", { class: "day" }),
      h("div", { class: "card-in" },
        h("div", { class: "card-head" }, h("span", { class: "card-tag" }, icon("coin"), texts[f.event] ? t("fee." + f.event) : t("fee.other")), h("time", {}, clock(m.ts))),
        f.amount && sign !== undefined ? h("div", { class: "card-amount" }, sign + won(f.amount)) : null,
        h("p", { class: "card-body" }, text),
        facts.length ? h("p", { class: "card-facts" }, facts.join(" · ")) : null,
        f.receipt ? h("div", { class: "card-receipt", "data-testid": "fee-receipt" }, attachmentView(f.receipt)) : null,
        f.balance_after !== undefined ? h("p", { class: "card-foot" }, t("fee.balance", won(f.balance_after))) : null));
  }

  // insert puts m at its seq's place (replacing an older rendering).
  function insert(m) {
    const el = msgEl(m);
    const old = rendered.get(m.seq);
    rendered.set(m.seq, el);
    if (old) {
      old.replaceWith(el);
      return;
    }
    let after = list.lastElementChild;
    while (after && Number(after.dataset.seq) > m.seq) after = after.previousElementSibling;
    if (after) after.after(el);
    else list.prepend(el);
  }

  // tidy shows a date line at each new day and the sender's name only at
  // the start of a run of their messages.
  function tidy() {
    let prev = null;
    for (const el of list.children) {
      const ts = Number(el.dataset.ts);
      const d = el.querySelector(":scope > .day");
      const newDay = !prev || new Date(ts).toDateString() !== new Date(Number(prev.dataset.ts)).toDateString();
      d.textContent = newDay ? day(ts) : "";
      d.hidden = !newDay;
      const cont = !newDay && prev && el.dataset.from && prev.dataset.from === el.dataset.from && ts - Number(prev.dataset.ts) < GROUP_MS;
      el.classList.toggle("cont", !!cont);
      // In a run within one minute only the last message shows the time.
      if (prev) prev.classList.toggle("quiet-time", !!cont && minute(ts) === minute(Number(prev.dataset.ts)));
      prev = el;
    }
    if (prev) prev.classList.remove("quiet-time");
    for (const q of list.querySelectorAll(".quote:not([data-resolved])")) fillQuote(q);
    paintPresence();
  }

  function setReadBy(el) {
    const n = readBy(room, Number(el.dataset.seq));
    const span = el.querySelector(".readby");
    if (span) span.textContent = n ? t("chat.readBy", n) : "";
  }

  function paintReads() {
    for (const el of list.querySelectorAll(".msg.own")) setReadBy(el);
  }

  // online: the socket knows for the user themselves, presence events for
  // everyone else.
  const online = (user) => (user === state.me.id ? state.online : !!state.presence.get(user));

  function paintPresence() {
    for (const d of list.querySelectorAll(".dot[data-user]")) d.classList.toggle("online", online(Number(d.dataset.user)));
    const members = state.members.get(room) || [];
    if (r.direct) {
      const other = members.find((m) => m.user_id !== state.me.id);
      const on = other && online(other.user_id);
      subtitle.replaceChildren(h("span", { class: `dot${on ? " online" : ""}` }), on ? t("online") : t("offline"));
    } else if (members.length && members.length <= 8) {
      subtitle.replaceChildren(...members.map((m) => h("span", { class: "who" },
        h("span", { class: `dot${online(m.user_id) ? " online" : ""}`, "data-testid": "presence" }), m.display_name)));
    } else {
      subtitle.textContent = t("chat.members", r.member_count, members.filter((m) => online(m.user_id)).length);
    }
  }

  function pendingEl(frame, failed) {
    const el = h("div", { class: `msg own pending${failed ? " failed" : ""}`, "data-cid": frame.cid, "data-testid": "pending" },
      h("div", { class: "line" },
        h("div", { class: "bubble" },
          frame.reply_to ? quote(frame.reply_to) : null,
          frame.attachment_name ? h("div", { class: "attachment chip" }, frame.attachment_name) : null,
          frame.body ? h("div", { class: "body" }, frame.body) : null),
        h("div", { class: "info" }, failed
          ? h("span", { class: "error" }, failed, " ", h("button", { type: "button", class: "link", onclick: () => { el.remove(); pendingEls.delete(frame.cid); } }, t("chat.discard")))
          : h("span", {}, state.online ? t("chat.sending") : t("chat.waiting")))));
    return el;
  }

  function showPending(frame, failed) {
    const el = pendingEl(frame, failed);
    const old = pendingEls.get(frame.cid);
    pendingEls.set(frame.cid, el);
    if (old) old.replaceWith(el);
    else pendingBox.append(el);
  }

  // --- scrolling and reading ---

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  // pinned: the user is following the newest messages, so the view stays
  // at the bottom as messages arrive and as it is resized or shown again.
  let pinned = true;

  function toBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    newPill.hidden = true;
    markRead();
  }

  function markRead() {
    if (document.visibilityState !== "visible" || !scroller.clientHeight || !nearBottom()) return;
    if (r.latest > r.myRead && state.socket.read(room, r.latest)) {
      r.myRead = r.latest;
      r.unread_mentions = 0;
      emit("rooms");
    }
  }

  // jump scrolls to a loaded message and marks it; a search hit jumps at
  // once (history loading above it must not cut a smooth scroll short).
  function jump(seq, behavior = "smooth") {
    const el = rendered.get(seq);
    if (!el) return;
    pinned = false;
    el.scrollIntoView({ block: "center", behavior });
    el.classList.add("flash");
    el.setAttribute("tabindex", "-1");
    el.focus({ preventScroll: true });
    setTimeout(() => el.classList.remove("flash"), 1200);
  }

  // showAround brings a message found by search into view with its
  // context: the page before it, and everything from it up to what is
  // already loaded, so the list stays without gaps (at most CONTEXT_PAGES
  // pages of 100 forward; older history then loads on scrolling up).
  async function showAround(seq) {
    if (!rendered.has(seq)) {
      try {
        const loaded = rendered.size ? Math.min(...rendered.keys()) : Infinity;
        const page = await api.history(room, seq + 1, CONTEXT);
        let after = seq;
        for (let i = 0; i < CONTEXT_PAGES && after + 1 < loaded; i++) {
          const next = await api.historyAfter(room, after, 100);
          page.push(...next);
          if (next.length < 100) break;
          after = next[next.length - 1].seq;
        }
        for (const m of page) {
          if (!msgs.has(m.seq)) msgs.set(m.seq, m);
          insert(msgs.get(m.seq));
        }
        pinned = false;
        tidy();
      } catch (e) {
        toast(errorText(e), "error");
        return;
      }
    }
    jump(seq, "instant");
  }

  async function loadOlder() {
    const oldest = Math.min(...rendered.keys());
    if (loadingOlder || !rendered.size || oldest <= 1) {
      if (rendered.size && oldest <= 1) edge.textContent = t("chat.start");
      return;
    }
    loadingOlder = true;
    edge.textContent = t("loading");
    try {
      const page = await api.history(room, oldest, PAGE);
      const before = scroller.scrollHeight;
      const top = scroller.scrollTop;
      for (const m of page) {
        if (!msgs.has(m.seq)) msgs.set(m.seq, m);
        insert(msgs.get(m.seq));
      }
      tidy();
      scroller.scrollTop = top + (scroller.scrollHeight - before);
      edge.textContent = page.length < PAGE ? t("chat.start") : "";
      loadingOlder = false;
      if (page.length === PAGE && scroller.scrollTop < 300) loadOlder();
    } catch (e) {
      edge.textContent = errorText(e);
      loadingOlder = false;
    }
  }

  // --- actions ---

  function choose(file) {
    fileInput.value = "";
    if (!file) return;
    if (file.size > MAX_SIZE) {
      toast(t("file.tooLarge"), "error");
      return;
    }
    clearChosen();
    chosen = { file, url: file.type.startsWith("image/") ? URL.createObjectURL(file) : "" };
    preview.hidden = false;
    preview.replaceChildren(
      chosen.url ? h("img", { src: chosen.url, alt: file.name, "data-testid": "attach-preview-img" }) : null,
      h("div", { class: "grow" }, h("strong", {}, file.name), h("div", { class: "muted small", "data-testid": "attach-state" }, byteSize(file.size))),
      h("button", { type: "button", class: "icon-btn", "aria-label": t("file.remove"), "data-testid": "attach-remove", onclick: () => { clearChosen(); input.focus(); } }, "✕"));
    input.focus();
  }

  function clearChosen() {
    if (chosen && chosen.url) URL.revokeObjectURL(chosen.url);
    chosen = null;
    preview.hidden = true;
    preview.replaceChildren();
  }

  let uploading = false;

  async function send() {
    const body = input.value;
    if (uploading || (!body.trim() && !chosen)) return;
    if ([...body].length > 4000) {
      toast(t("chat.tooLong"), "error");
      return;
    }
    let attachment = null;
    if (chosen) {
      const stateEl = preview.querySelector("[data-testid=attach-state]");
      uploading = true;
      sendBtn.disabled = true;
      try {
        attachment = await upload(room, chosen.file, (p) => (stateEl.textContent = t("file.uploading", Math.round(p * 100))));
      } catch (e) {
        stateEl.textContent = errorText(e);
        toast(errorText(e), "error");
        return;
      } finally {
        uploading = false;
        sendBtn.disabled = false;
      }
      clearChosen();
    }
    const frame = state.socket.send(room, body.trim() ? body : "", replyTo, attachment);
    lastTyping = 0; // the next keystroke announces typing again at once
    showPending(frame);
    input.value = "";
    autosize();
    cancelReply();
    toBottom();
    input.focus();
  }

  function startReply(m) {
    for (const el of list.querySelectorAll(".msg.show")) el.classList.remove("show");
    replyTo = m.seq;
    replyBar.hidden = false;
    replyBar.replaceChildren(
      h("div", { class: "grow" }, h("strong", {}, t("chat.replyingTo", m.name || t("chat.system"))), h("div", { class: "quote-body" }, m.body)),
      h("button", { type: "button", class: "icon-btn", "aria-label": t("cancel"), onclick: cancelReply }, "✕"));
    input.focus();
  }

  function cancelReply() {
    replyTo = 0;
    replyBar.hidden = true;
    replyBar.replaceChildren();
  }

  async function remove(m) {
    for (const el of list.querySelectorAll(".msg.show")) el.classList.remove("show");
    if (!(await confirm(t("chat.deleteTitle"), m.body, t("chat.delete"), { testid: "delete-dialog" }))) return;
    if (!state.socket.remove(room, m.seq)) toast(t("offline"), "error");
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  input.addEventListener("keydown", (e) => {
    // Enter sends, but not while an IME (Hangul input) is composing.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    if (input.value && Date.now() - lastTyping > TYPING_EVERY) {
      lastTyping = Date.now();
      state.socket.typing(room);
    }
  });
  scroller.addEventListener("scroll", () => {
    pinned = nearBottom();
    if (pinned) {
      newPill.hidden = true;
      markRead();
    }
  });
  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);
  window.addEventListener("focus", onVisible);
  const resized = new ResizeObserver(() => {
    if (pinned) toBottom();
  });
  resized.observe(scroller);
  resized.observe(list);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadOlder();
  }, { root: scroller, rootMargin: "300px 0px 0px 0px" });

  function paintTyping() {
    const now = Date.now();
    const who = [...(state.typing.get(room) || [])].filter(([, until]) => until > now).map(([u]) => memberName(room, u));
    typingEl.textContent = who.length ? t("chat.typing", who.join(", ")) : "";
  }
  const typingTimer = setInterval(paintTyping, 1000);

  // --- live events ---

  const off = listen({
    msg: (m) => {
      if (m.room !== room) return;
      const stick = pinned || m.from === state.me.id;
      const p = pendingEls.get(m.cid);
      if (m.from === state.me.id && p) {
        p.remove();
        pendingEls.delete(m.cid);
      }
      insert(m);
      tidy();
      if (m.from !== state.me.id && state.typing.get(room)) state.typing.get(room).delete(m.from);
      paintTyping();
      if (stick) toBottom();
      else newPill.hidden = false;
    },
    deleted: (ev) => {
      if (ev.room !== room || !msgs.has(ev.seq)) return;
      insert(msgs.get(ev.seq));
      tidy();
    },
    read: (ev) => ev.room === room && paintReads(),
    presence: () => paintPresence(),
    typing: (ev) => ev.room === room && paintTyping(),
    status: (up) => {
      for (const f of state.socket.pendingIn(room)) showPending(f);
      paintPresence();
      // Presence and read events missed while offline are not replayed.
      if (up) loadPresence().catch(() => {});
      markRead();
    },
    failed: ({ frame, error }) => frame.room === room && showPending(frame, error.message),
    members: (id) => id === room && (paintPresence(), paintReads()),
    edited: (ev) => {
      if (ev.room !== room || !msgs.has(ev.seq)) return;
      insert(msgs.get(ev.seq));
      tidy();
    },
    notice: (id) => id === room && notice.paint(),
    jump: (ev) => ev.room === room && showAround(ev.seq),
  });

  async function loadPresence() {
    const presence = await api.presence(room);
    const reads = state.reads.get(room) || new Map();
    for (const p of presence) {
      state.presence.set(p.user_id, p.online);
      reads.set(p.user_id, Math.max(reads.get(p.user_id) || 0, p.read || 0));
    }
    state.reads.set(room, reads);
    paintPresence();
    paintReads();
  }

  // --- first paint: what is loaded, then the newest page and members ---

  for (const seq of [...msgs.keys()].sort((a, b) => a - b)) insert(msgs.get(seq));
  for (const f of state.socket.pendingIn(room)) showPending(f);
  tidy();
  toBottom();
  (async () => {
    try {
      const [page, members] = await Promise.all([api.history(room, 0, PAGE), api.members(room), loadPresence()]);
      state.members.set(room, members);
      const applied = state.socket.lastSeq.get(room) || 0;
      for (const m of page.reverse()) {
        if (m.seq > applied) state.socket.offer(m);
        else if (!msgs.has(m.seq)) msgs.set(m.seq, m);
        if (msgs.has(m.seq)) insert(msgs.get(m.seq));
      }
      // Names in fee cards and reminders need the member list.
      for (const el of list.querySelectorAll(".card")) insert(msgs.get(Number(el.dataset.seq)));
      tidy();
      paintReads();
      toBottom();
      if (page.length < PAGE) edge.textContent = t("chat.start");
      observer.observe(edge);
      emit("members", room);
    } catch (e) {
      edge.textContent = errorText(e);
    }
  })();
  input.focus();

  return () => {
    off();
    observer.disconnect();
    resized.disconnect();
    clearInterval(typingTimer);
    document.removeEventListener("visibilitychange", onVisible);
    window.removeEventListener("focus", onVisible);
  };
}
