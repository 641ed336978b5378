// What a club does beyond chatting: system lines in the reader's
// language, invitations (by contact or link) and the invite-link join
// page, the notice banner, editing one's own messages and mentions.
import { api } from "./api.js";
import { state, memberName, isAdmin } from "./state.js";
import { h, modal, toast, errorText, won, date, heldWhilePressed } from "./ui.js";
import { t } from "./i18n.js";

// systemText renders a system message from its structured fields; the
// server's Korean body is the fallback for events this client does not
// know.
export function systemText(m, room) {
  const s = m.system || {};
  const name = (id, given) => (id ? (given || memberName(room, id)) : "");
  const user = name(s.user, s.user_name);
  const by = name(s.by, s.by_name);
  const texts = {
    joined: () => t("sys.joined", user),
    joined_by_link: () => t("sys.joined_by_link", user, by),
    left: () => t("sys.left", user),
    removed: () => t("sys.removed", by, user),
    added: () => t("sys.added", by, user),
    invitation_accepted: () => t("sys.invitation_accepted", user, by),
    role_changed: () => t(s.role === "admin" ? "sys.role_admin" : "sys.role_member", by, user),
    owner_changed: () => t("sys.owner_changed", by, user),
    renamed: () => t("sys.renamed", by, s.name),
    dues_changed: () => t("sys.dues_changed", by, won(s.amount),
      s.period === "weekly" ? t("sys.weekly", t("weekday." + s.due_day)) : t("sys.monthly", s.due_day), s.from),
  };
  return texts[s.event] ? texts[s.event]() : m.body;
}

// mentionsMe reports whether a message names the reader with @username.
export const mentionsMe = (m) => Array.isArray(m.mentions) && m.mentions.includes(state.me.id);

// bodyWithMentions highlights @names in a body.
export function bodyWithMentions(text) {
  const parts = text.split(/(@[A-Za-z0-9_.-]{3,32})/);
  return parts.map((p, i) => (i % 2 ? h("span", { class: "mention" }, p) : p));
}

// EDIT_MS is how long after sending the author may edit (the server's rule).
const EDIT_MS = 24 * 3600 * 1000;
export const canEdit = (m) => m.from === state.me.id && m.kind === "text" && !m.deleted && Date.now() - m.ts < EDIT_MS;

// editMessage asks for the new text and sends it.
export async function editMessage(room, m) {
  const body = await modal(t("club.edit"), (close) => {
    const text = h("textarea", { rows: 3, maxlength: 4000, "aria-label": t("club.edit"), "data-testid": "edit-body" }, m.body);
    text.value = m.body;
    return h("form", { class: "modal-body", onsubmit: (e) => { e.preventDefault(); close(text.value); } },
      text,
      h("div", { class: "row end" }, h("button", { class: "btn primary", type: "submit", "data-testid": "edit-save" }, t("club.save"))));
  }, { testid: "edit-dialog" });
  if (!body || !body.trim() || body === m.body) return;
  try {
    await api.edit(room, m.seq, body);
  } catch (e) {
    toast(errorText(e), "error");
  }
}

// pin sets (or, with 0, clears) the room's notice.
export async function pin(room, seq) {
  try {
    if (seq) await api.setNotice(room, seq);
    else await api.clearNotice(room);
  } catch (e) {
    toast(errorText(e), "error");
  }
}

// noticeBanner is the room's pinned notice, redrawn by paint().
export function noticeBanner(room) {
  const el = h("div", { class: "notice-bar", role: "note", hidden: true, "data-testid": "notice" });
  const paint = () => {
    const n = (state.rooms.get(room) || {}).notice;
    el.hidden = !n;
    if (!n) return el.replaceChildren();
    const parts = [h("strong", {}, t("club.notice")), h("span", { class: "grow", "data-testid": "notice-body" }, n.body)];
    if (isAdmin(room)) parts.push(h("button", { type: "button", class: "btn ghost small", "data-testid": "notice-clear", onclick: () => pin(room, 0) }, t("club.unpin")));
    el.replaceChildren(...parts);
  };
  paint();
  return { el, paint };
}

// mayInvite reports whether the reader may bring people into the room.
export function mayInvite(room) {
  const r = state.rooms.get(room);
  return !!r && !r.direct && (isAdmin(room) || r.members_invite);
}

// inviteDialog brings people in: contacts (added at once when they have
// the reader too, invited otherwise), links (admins list and revoke
// them) and, for admins, the setting letting members invite.
export function inviteDialog(room) {
  const admin = isAdmin(room);
  return modal(t("club.invite"), () => {
    const err = h("p", { class: "error", role: "alert" });
    const contactsBox = h("div", { class: "members" }, t("loading"));
    const linkList = h("ul", { class: "results", "data-testid": "link-list" });
    const expires = h("select", { "data-testid": "link-expires", "aria-label": t("club.linkExpires") },
      h("option", { value: 3600 }, t("club.hour")), h("option", { value: 86400 }, t("club.day")), h("option", { value: 604800, selected: true }, t("club.week")));
    const uses = h("input", { type: "number", min: 0, max: 10000, value: 0, "aria-label": t("club.linkUses"), "data-testid": "link-uses" });
    const created = h("div", { class: "row", "data-testid": "link-created" });
    async function loadContacts() {
      try {
        const [cs, members] = await Promise.all([api.contacts(), api.members(room)]);
        const inRoom = new Set(members.map((m) => m.user_id));
        const rows = cs.filter((c) => !inRoom.has(c.id)).map((c) => h("label", { class: "check" },
          h("input", { type: "checkbox", value: c.id, "data-testid": `invite-${c.username}` }),
          h("span", {}, c.display_name), h("small", { class: "muted" }, "@" + c.username, " · ", c.mutual ? t("club.mutual") : t("club.oneWay"))));
        contactsBox.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted" }, t("club.noneToInvite"))]));
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    async function invite() {
      const ids = [...contactsBox.querySelectorAll("input:checked")].map((i) => Number(i.value));
      if (!ids.length) return;
      try {
        const r = await api.invite(room, ids);
        toast(t("club.invited", r.added.length, r.invited.length));
        loadContacts();
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    async function loadLinks() {
      if (!admin) return;
      try {
        const links = await api.inviteLinks(room);
        linkList.replaceChildren(...links.map((l) => h("li", { class: "result", "data-testid": "link-item", "data-state": l.state },
          h("div", { class: "grow" }, h("code", { class: "small" }, l.code.slice(0, 8) + "…"),
            h("div", { class: "muted small" }, t("club.linkState." + l.state), " · ", t("club.linkUsed", l.uses, l.max_uses || "∞"), " · ", date(l.expires_at))),
          l.state === "active" ? h("button", { type: "button", class: "btn", "data-testid": "link-revoke", onclick: async () => {
            try {
              await api.revokeLink(room, l.code);
              loadLinks();
            } catch (e) {
              err.textContent = errorText(e);
            }
          } }, t("club.revoke")) : null)));
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    async function makeLink() {
      err.textContent = "";
      try {
        const l = await api.createLink(room, Number(expires.value), Number(uses.value) || 0);
        const url = h("input", { readonly: true, value: l.url, class: "grow", "aria-label": t("club.link"), "data-testid": "link-url" });
        created.replaceChildren(url, h("button", { type: "button", class: "btn", "data-testid": "link-copy", onclick: async () => {
          url.select();
          try {
            await navigator.clipboard.writeText(l.url);
          } catch {
            document.execCommand("copy");
          }
          toast(t("club.copied"));
        } }, t("club.copy")));
        loadLinks();
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    const setting = admin ? h("label", { class: "check" },
      h("input", { type: "checkbox", checked: !!state.rooms.get(room).members_invite, "data-testid": "members-invite", onchange: async (e) => {
        try {
          const v = await api.updateRoom(room, { members_invite: e.target.checked });
          Object.assign(state.rooms.get(room), { members_invite: v.members_invite });
        } catch (e2) {
          err.textContent = errorText(e2);
          e.target.checked = !e.target.checked;
        }
      } }), h("span", {}, t("club.membersInvite"))) : null;
    loadContacts();
    loadLinks();
    return h("div", { class: "modal-body" },
      h("fieldset", { class: "members" }, h("legend", {}, t("club.byContact")), contactsBox,
        h("div", { class: "row end" }, h("button", { type: "button", class: "btn primary", "data-testid": "invite-send", onclick: invite }, t("club.inviteSend")))),
      h("fieldset", {}, h("legend", {}, t("club.byLink")),
        h("div", { class: "row" }, h("label", { class: "field" }, h("span", {}, t("club.linkExpires")), expires),
          h("label", { class: "field" }, h("span", {}, t("club.linkUses")), uses)),
        h("div", { class: "row end" }, h("button", { type: "button", class: "btn primary", "data-testid": "link-create", onclick: makeLink }, t("club.linkCreate"))),
        created, linkList),
      setting, err);
  }, { testid: "invite-dialog" });
}

// mountInvitations lists the reader's pending invitations in el, kept
// live by invitation events; accepting opens the room.
export function mountInvitations(el, refresh) {
  let invs = [];
  const paint = () => {
    el.hidden = !invs.length;
    el.replaceChildren(...invs.map((inv) => h("div", { class: "invitation", "data-testid": "invitation" },
      h("span", { class: "grow" }, t("club.invitedBy", inv.inviter_name, inv.room_name)),
      h("button", { type: "button", class: "btn primary small", "data-testid": "invitation-accept", onclick: () => answer(inv, true) }, t("club.accept")),
      h("button", { type: "button", class: "btn small", "data-testid": "invitation-decline", onclick: () => answer(inv, false) }, t("club.decline")))));
  };
  async function answer(inv, yes) {
    try {
      if (yes) await api.accept(inv.id);
      else await api.decline(inv.id);
      invs = invs.filter((x) => x.id !== inv.id);
      paint();
      if (yes) {
        await refresh();
        location.hash = `#/room/${inv.room_id}`;
      }
    } catch (e) {
      toast(errorText(e), "error");
    }
  }
  api.invitations().then((list) => {
    invs = list;
    paint();
  }, (e) => toast(errorText(e), "error"));
  // One arriving under a press repaints after the release (heldWhilePressed).
  const shown = heldWhilePressed(el, paint);
  const onInvitation = (e) => {
    invs = invs.filter((x) => x.id !== e.detail.id).concat(e.detail);
    shown.render();
  };
  window.addEventListener("moim:invitation", onInvitation);
  paint();
  return () => {
    window.removeEventListener("moim:invitation", onInvitation);
    shown.off();
  };
}

// joinPage is #/invite/{code}: join the link's room, or say why not.
export function joinPage(el, code, refresh) {
  const msg = h("p", { class: "muted", role: "status", "data-testid": "invite-status" }, t("club.joinAsk"));
  const btn = h("button", { type: "button", class: "btn primary", "data-testid": "invite-join", onclick: async () => {
    btn.disabled = true;
    try {
      const room = await api.joinByLink(code);
      await refresh();
      location.hash = `#/room/${room.id}`;
    } catch (e) {
      const known = ["invite_expired", "invite_used_up", "invite_revoked", "invite_not_found", "banned"];
      msg.textContent = known.includes(e.code) ? t("club.err." + e.code) : errorText(e);
      msg.className = "error";
    }
  } }, t("club.join"));
  el.replaceChildren(h("div", { class: "empty" }, h("h1", {}, t("club.joinTitle")), msg,
    h("div", { class: "row center" }, btn, h("a", { class: "btn", href: "#/" }, t("cancel")))));
}

// applyEdit puts an edited event into a loaded message.
export function applyEdit(msg, ev) {
  Object.assign(msg, { body: ev.body, edited_at: ev.edited_at });
}
