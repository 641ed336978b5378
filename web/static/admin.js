// The room panel (#/room/7/admin): the members with their roles, each
// name opening a 1:1 chat; for the owner and admins the room's name,
// description and password, promoting and demoting (owner), removing
// members (a removal bans until lifted), the bans, and — for the owner —
// handing the room over and deleting it once its fund is settled.
import { api } from "./api.js";
import { state, emit } from "./state.js";
import { h, confirm, toast, errorText, won, date, newest } from "./ui.js";
import { t } from "./i18n.js";

export function mountAdmin(el, room) {
  const body = h("div", { class: "panel-body", "data-testid": "admin-panel" }, h("p", { class: "muted pad" }, t("loading")));
  const title = h("span", { class: "muted small" }, state.rooms.get(room).name);
  el.replaceChildren(
    h("header", { class: "panel-head" },
      h("a", { class: "icon-btn", href: `#/room/${room}`, "aria-label": t("close"), "data-testid": "close-admin" }, "✕"),
      h("h2", {}, t("admin.title")),
      title),
    body);
  let alive = true;
  const reload = newest();

  async function load() {
    const latest = reload();
    const r = state.rooms.get(room);
    const members = await api.members(room);
    if (!alive || !latest()) return;
    // The list says what the reader is now: a role given or taken
    // elsewhere (an ownership handed over) shows here at once.
    const mine = members.find((m) => m.user_id === state.me.id);
    if (mine && mine.role !== r.role) {
      r.role = mine.role;
      emit("rooms");
    }
    const admin = r.role === "owner" || r.role === "admin";
    const [bans, fund] = await Promise.all([
      admin ? api.bans(room) : Promise.resolve([]),
      r.role === "owner" ? api.fund(room).catch(() => null) : Promise.resolve(null),
    ]);
    if (!alive || !latest()) return;
    state.members.set(room, members);
    emit("members", room);
    const handOver = r.role === "owner" ? handOverBox(room, members, act) : null;
    body.replaceChildren(...[
      admin ? settings(r) : about(r),
      memberList(r, members),
      admin ? banList(bans) : null,
      handOver ? h("section", { class: "box" }, handOver) : null,
      r.role === "owner" ? h("section", { class: "box" }, deleteRoomBox({ room, balance: fund ? fund.balance : 0 })) : null,
    ].filter(Boolean));
  }

  // act runs a change, says how it went and shows the new state.
  async function act(fn, okText) {
    try {
      await fn();
      toast(okText, "ok");
    } catch (e) {
      toast(errorText(e), "error");
    }
    await load().catch((e) => toast(errorText(e), "error"));
  }

  function about(r) {
    return h("section", { class: "box" }, h("h3", {}, r.name), r.description ? h("p", {}, r.description) : null);
  }

  function settings(r) {
    const name = h("input", { required: true, maxlength: 100, value: r.name, "data-testid": "admin-name" });
    const desc = h("textarea", { rows: 2, maxlength: 500, "data-testid": "admin-description" });
    desc.value = r.description || "";
    const pass = h("input", { type: "password", minlength: 8, maxlength: 72, autocomplete: "new-password", "data-testid": "admin-password" });
    const noPass = h("input", { type: "checkbox", "data-testid": "admin-no-password" });
    return h("form", {
      class: "box stack", "aria-labelledby": `settings-${room}`, "data-testid": "admin-settings",
      onsubmit: (e) => {
        e.preventDefault();
        // Only what changed: a rename is announced in the chat.
        const change = {};
        if (name.value.trim() !== r.name) change.name = name.value;
        if (desc.value.trim() !== (r.description || "")) change.description = desc.value;
        if (noPass.checked) change.password = "";
        else if (pass.value) change.password = pass.value;
        act(async () => {
          const updated = await api.updateRoom(room, change);
          Object.assign(state.rooms.get(room), updated);
          title.textContent = updated.name;
          emit("rooms");
        }, t("admin.saved"));
      },
    },
    h("h3", { id: `settings-${room}` }, t("admin.settings")),
    h("label", { class: "field" }, h("span", {}, t("rooms.name")), name),
    h("label", { class: "field" }, h("span", {}, t("rooms.description")), desc),
    h("label", { class: "field" }, h("span", {}, r.has_password ? t("admin.newPassword") : t("rooms.password")), pass),
    r.has_password ? h("label", { class: "check" }, noPass, h("span", {}, t("admin.removePassword"))) : null,
    h("button", { type: "submit", class: "btn primary", "data-testid": "admin-save" }, t("admin.save")));
  }

  function memberList(r, members) {
    const order = { owner: 0, admin: 1, member: 2 };
    const sorted = [...members].sort((a, b) => order[a.role] - order[b.role] || a.display_name.localeCompare(b.display_name));
    return h("section", { class: "box", "aria-labelledby": `members-${room}` },
      h("h3", { id: `members-${room}` }, t("admin.members", members.length)),
      h("ul", { class: "people", "data-testid": "admin-members" }, sorted.map((m) => {
        const me = m.user_id === state.me.id;
        const canRemove = !me && m.role !== "owner" && (r.role === "owner" || (r.role === "admin" && m.role === "member"));
        return h("li", { class: "person", "data-testid": "admin-member", "data-user": m.user_id, "data-role": m.role },
          h("div", { class: "grow" },
            me ? h("strong", {}, m.display_name, ` (${t("you")})`) : h("button", {
              type: "button", class: "link strong", "data-testid": "admin-direct", title: t("admin.direct"),
              onclick: () => direct(m),
            }, m.display_name, h("span", { class: "sr-only" }, ` — ${t("admin.direct")}`)),
            h("div", { class: "muted small" }, "@" + m.username, " · ", h("span", { "data-testid": "admin-role" }, t("role." + m.role)))),
          r.role === "owner" && !me ? h("button", {
            type: "button", class: "btn small", "data-testid": m.role === "admin" ? "admin-demote" : "admin-promote",
            onclick: () => {
              const role = m.role === "admin" ? "member" : "admin";
              act(() => api.setRole(room, m.user_id, role), t("admin.roleSet", m.display_name, t("role." + role)));
            },
          }, m.role === "admin" ? t("admin.demote") : t("admin.promote")) : null,
          canRemove ? h("button", {
            type: "button", class: "btn small danger", "data-testid": "admin-remove",
            onclick: async () => {
              if (!(await confirm(t("admin.remove"), t("admin.removeConfirm", m.display_name), t("admin.remove"), { testid: "remove-dialog" }))) return;
              act(() => api.removeMember(room, m.user_id), t("admin.removed", m.display_name));
            },
          }, t("admin.remove")) : null);
      })));
  }

  async function direct(m) {
    try {
      const d = await api.direct(m.user_id);
      location.hash = `#/room/${d.id}`;
    } catch (e) {
      toast(errorText(e), "error");
    }
  }

  function banList(bans) {
    return h("section", { class: "box", "aria-labelledby": `bans-${room}` },
      h("h3", { id: `bans-${room}` }, t("admin.bans")),
      bans.length ? h("ul", { class: "people", "data-testid": "admin-bans" }, bans.map((b) => h("li", { class: "person", "data-testid": "admin-ban", "data-user": b.user_id },
        h("div", { class: "grow" }, h("strong", {}, b.display_name), h("div", { class: "muted small" }, "@" + b.username, " · ", date(b.created_at))),
        h("button", {
          type: "button", class: "btn small", "data-testid": "admin-unban",
          onclick: () => act(() => api.liftBan(room, b.user_id), t("admin.unbanned", b.display_name)),
        }, t("admin.unban"))))) : h("p", { class: "muted" }, t("admin.noBans")));
  }

  load().catch((e) => body.replaceChildren(h("p", { class: "error pad" }, errorText(e))));
  return () => {
    alive = false;
  };
}

// deleteRoomBox is the owner's delete control. A room whose fund holds
// money cannot go (409 fund_not_empty): the box says so up front and
// again if the fund changed meanwhile. onStart runs (and is awaited)
// before the request: the dues panel stops reloading a room that is going
// away and lets a reload in flight finish first, so nothing asks for the
// room after it is gone. onFail runs when it was refused.
export function deleteRoomBox({ room, balance, onStart = () => {}, onFail = () => {} }) {
  return h("div", { class: "stack", "data-testid": "delete-room-box" },
    h("h4", {}, t("dues.deleteRoom")),
    h("p", { class: "muted small" }, balance > 0 ? t("dues.settleFirst", won(balance)) : t("dues.deleteHint")),
    h("button", {
      type: "button", class: "btn danger", "data-testid": "delete-room",
      onclick: async () => {
        if (!(await confirm(t("dues.deleteRoom"), t("dues.deleteConfirm"), t("dues.deleteRoom"), { testid: "delete-dialog" }))) return;
        await onStart();
        try {
          await api.deleteRoom(room);
          location.hash = "#/";
        } catch (e) {
          onFail();
          toast(e.code === "fund_not_empty" ? t("dues.settleFirst", won(balance)) : errorText(e), "error");
        }
      },
    }, t("dues.deleteRoom")));
}

// handOverBox lets the owner give the room to another member (a treasurer
// handing over) after a confirm; the old owner stays on as an admin. act
// runs the change and shows the panel again (both panels have one); null
// when there is nobody to hand it to. keep, given by a panel that draws
// the box anew on each reload (the dues panel's keeper), keeps the member
// chosen across them.
export function handOverBox(room, members, act, keep) {
  const others = members.filter((m) => m.user_id !== state.me.id);
  if (!others.length) return null;
  const who = h("select", { "aria-label": t("owner.to"), "data-testid": "owner-who" }, others.map((m) => h("option", { value: m.user_id }, m.display_name)));
  if (keep) keep.kept(who);
  return h("form", {
    class: "stack", "data-testid": "owner-box",
    onsubmit: async (e) => {
      e.preventDefault();
      const name = who.selectedOptions[0].textContent;
      if (!(await confirm(t("owner.title"), t("owner.confirm", name), t("owner.title"), { testid: "owner-dialog" }))) return;
      await act(async () => {
        await api.transferOwner(room, Number(who.value));
        if (keep) keep.forget(who);
        state.rooms.get(room).role = "admin";
        emit("rooms");
      }, t("owner.done", name));
    },
  },
  h("h4", {}, t("owner.title")),
  h("p", { class: "muted small" }, t("owner.hint")),
  h("label", { class: "field" }, h("span", {}, t("owner.to")), who),
  h("button", { type: "submit", class: "btn", "data-testid": "transfer-owner" }, t("owner.title")));
}
