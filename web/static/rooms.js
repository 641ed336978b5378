// The sidebar: who is logged in, the room list with unread counts and
// last messages, and the dialogs to create, find and join rooms and to
// manage contacts and open 1:1 chats.
import { api } from "./api.js";
import { state, listen, unread } from "./state.js";
import { h, icon, modal, toast, errorText, clock, initial, langToggle, heldWhilePressed } from "./ui.js";
import { t } from "./i18n.js";
import { mountInvitations, systemText } from "./club.js";
import { pushButton } from "./push.js";

export function mountSidebar(el, { logout, refresh }) {
  const list = h("nav", { class: "room-list", "aria-label": t("rooms.title"), "data-testid": "room-list" });
  const status = h("span", { class: "dot", title: t("offline") });
  const invitations = h("section", { class: "invitations", "aria-label": t("club.invitations"), "data-testid": "invitations", hidden: true });
  el.replaceChildren(
    h("header", { class: "side-head" },
      h("div", { class: "brand" }, h("img", { src: "/assets/icon.svg", alt: "", width: 28, height: 28 }), h("span", {}, "모임")),
      langToggle(),
      h("button", { class: "btn ghost small", type: "button", "data-testid": "logout", onclick: logout }, t("auth.logout"))),
    h("div", { class: "me" }, status, h("span", { class: "me-name", "data-testid": "me-name" }, state.me.display_name), h("span", { class: "muted small" }, "@" + state.me.username)),
    h("div", { class: "side-actions" },
      h("button", { class: "btn primary", type: "button", "data-testid": "new-room", onclick: () => newRoom(refresh) }, t("rooms.new")),
      h("button", { class: "btn", type: "button", "data-testid": "find-rooms", onclick: () => findRooms(refresh) }, t("rooms.find")),
      h("button", { class: "btn", type: "button", "data-testid": "contacts", onclick: () => contacts(refresh) }, t("contacts.title")),
      pushButton()),
    invitations,
    list);
  const offInvitations = mountInvitations(invitations, refresh);

  function render() {
    const rooms = [...state.rooms.values()].sort((a, b) => activity(b) - activity(a));
    if (!rooms.length) {
      list.replaceChildren(h("p", { class: "muted pad" }, t("rooms.none")));
      return;
    }
    list.replaceChildren(...rooms.map((r) => {
      const n = unread(r.id);
      const last = r.last;
      return h("a", {
        class: "room-item", href: `#/room/${r.id}`, "data-room": r.id, "data-testid": "room-item",
        "aria-current": r.id === state.current ? "page" : false,
      },
      h("span", { class: `avatar${r.direct ? " direct" : ""}`, "aria-hidden": "true" }, initial(r.name)),
      h("span", { class: "room-main" },
        h("span", { class: "room-top" },
          h("span", { class: "room-name" }, r.name, r.has_password ? icon("lock", t("rooms.locked")) : null, r.muted ? icon("bellOff", t("push.muted")) : null),
          last ? h("time", { class: "room-time" }, clock(last.ts)) : null),
        h("span", { class: "room-bottom" },
          h("span", { class: "room-last" }, preview(last)),
          r.unread_mentions && n ? h("span", { class: "badge at", "data-testid": "mention-badge", "aria-label": t("club.mentions", r.unread_mentions) }, "@" + (r.unread_mentions > 99 ? "99+" : r.unread_mentions)) : null,
          n ? h("span", { class: "badge", "data-testid": "unread", "aria-label": t("rooms.unread", n) }, n > 999 ? "999+" : String(n)) : null)));
    }));
  }
  // A message reorders the list; one arriving under a press renders
  // after the release, so the room tapped opens (heldWhilePressed).
  const shown = heldWhilePressed(list, render);
  const off = listen({
    rooms: shown.render,
    route: shown.render,
    status: (online) => {
      status.classList.toggle("online", online);
      status.title = online ? t("online") : t("offline");
    },
  });
  render();
  return () => {
    off();
    shown.off();
    offInvitations();
  };
}

function activity(r) {
  return r.last ? r.last.ts : Date.parse(r.created_at) || 0;
}

function preview(m) {
  if (!m) return t("rooms.empty");
  if (m.deleted) return t("chat.deleted");
  if (m.kind === "system") return systemText(m, m.room);
  if (m.kind !== "text") return m.body;
  const who = m.from === state.me.id ? t("you") : m.name;
  return `${who}: ${m.body}`;
}

async function newRoom(refresh) {
  let contactList = [];
  try {
    contactList = await api.contacts();
  } catch (e) {
    toast(errorText(e), "error");
  }
  const id = await modal(t("rooms.new"), (close) => {
    const name = h("input", { required: true, maxlength: 100, "data-testid": "room-name" });
    const desc = h("input", { maxlength: 500 });
    const pass = h("input", { type: "password", maxlength: 72, autocomplete: "new-password" });
    const err = h("p", { class: "error", role: "alert" });
    const boxes = contactList.map((c) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: c.id, "data-testid": `member-${c.username}` }),
      h("span", {}, c.display_name), h("small", { class: "muted" }, "@" + c.username)));
    return h("form", {
      class: "modal-body",
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = "";
        const member_ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => Number(i.value));
        try {
          const room = await api.createRoom({ name: name.value, description: desc.value, password: pass.value, member_ids });
          close(room.id);
        } catch (e2) {
          err.textContent = errorText(e2);
        }
      },
    },
    h("label", { class: "field" }, h("span", {}, t("rooms.name")), name),
    h("label", { class: "field" }, h("span", {}, t("rooms.description")), desc),
    h("label", { class: "field" }, h("span", {}, t("rooms.password")), pass),
    h("fieldset", { class: "members" }, h("legend", {}, t("rooms.members")),
      boxes.length ? boxes : h("p", { class: "muted" }, t("rooms.noContacts"))),
    err,
    h("div", { class: "row end" }, h("button", { class: "btn primary", type: "submit", "data-testid": "create-room" }, t("rooms.create"))));
  }, { testid: "new-room-dialog" });
  if (id) await openRoom(refresh, id);
}

async function openRoom(refresh, id) {
  try {
    await refresh();
  } catch (e) {
    toast(errorText(e), "error");
  }
  location.hash = `#/room/${id}`;
}

async function findRooms(refresh) {
  const id = await modal(t("rooms.find"), (close) => {
    const q = h("input", { type: "search", placeholder: t("rooms.searchHint"), "data-testid": "search-q" });
    const results = h("ul", { class: "results" });
    const err = h("p", { class: "error", role: "alert" });
    let seq = 0;
    async function search() {
      const mine = ++seq;
      err.textContent = "";
      try {
        const r = await api.search(q.value.trim());
        if (mine !== seq) return;
        results.replaceChildren(...(r.rooms.length ? r.rooms.map((room) => result(room)) : [h("li", { class: "muted" }, t("rooms.noMatch"))]));
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    function result(room) {
      const pass = h("input", { type: "password", placeholder: t("rooms.password"), hidden: true, "data-testid": "join-password" });
      const joinErr = h("span", { class: "error" });
      const join = async () => {
        if (room.role) return close(room.id);
        if (room.has_password && pass.hidden) {
          pass.hidden = false;
          pass.focus();
          return;
        }
        joinErr.textContent = "";
        try {
          await api.join(room.id, pass.value);
          close(room.id);
        } catch (e) {
          joinErr.textContent = e.code === "wrong_password" ? t("rooms.wrongPassword") : errorText(e);
        }
      };
      pass.addEventListener("keydown", (e) => e.key === "Enter" && join());
      return h("li", { class: "result" },
        h("div", { class: "grow" },
          h("strong", {}, room.name, room.has_password ? icon("lock", t("rooms.locked")) : null),
          h("div", { class: "muted small" }, t("rooms.memberCount", room.member_count), room.description ? " · " + room.description : "")),
        pass,
        h("button", { type: "button", class: room.role ? "btn" : "btn primary", "data-testid": "join", onclick: join }, room.role ? t("rooms.open") : t("rooms.join")),
        joinErr);
    }
    let timer;
    q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, 250);
    });
    search();
    return h("div", { class: "modal-body" }, q, err, results);
  }, { testid: "find-dialog" });
  if (id) await openRoom(refresh, id);
}

async function contacts(refresh) {
  const id = await modal(t("contacts.title"), (close) => {
    const list = h("ul", { class: "results", "data-testid": "contact-list" });
    const username = h("input", { placeholder: t("contacts.username"), autocapitalize: "none", spellcheck: "false", required: true, "data-testid": "contact-username" });
    const err = h("p", { class: "error", role: "alert" });
    // Typing three or more characters of a username lists matches.
    const found = h("ul", { class: "results", "data-testid": "user-results" });
    let searchTimer;
    username.addEventListener("input", () => {
      clearTimeout(searchTimer);
      const text = username.value.trim();
      if (text.length < 3) return found.replaceChildren();
      searchTimer = setTimeout(async () => {
        try {
          const users = await api.findUsers(text);
          found.replaceChildren(...users.map((u) => h("li", { class: "result" },
            h("div", { class: "grow" }, h("strong", {}, u.display_name), h("div", { class: "muted small" }, "@" + u.username)),
            u.contact ? h("span", { class: "muted small" }, t("club.isContact")) : h("button", {
              type: "button", class: "btn", "data-testid": `found-${u.username}`,
              onclick: async () => {
                try {
                  await api.addContact(u.username);
                  username.value = "";
                  found.replaceChildren();
                  await load();
                } catch (e) {
                  err.textContent = errorText(e);
                }
              },
            }, t("contacts.add")))));
        } catch (e) {
          if (e.code !== "validation") err.textContent = errorText(e);
        }
      }, 250);
    });
    async function load() {
      try {
        const cs = await api.contacts();
        list.replaceChildren(...(cs.length ? cs.map((c) => h("li", { class: "result" },
          h("div", { class: "grow" }, h("strong", {}, c.display_name), h("div", { class: "muted small" }, "@" + c.username, " · ", c.mutual ? t("club.mutual") : t("club.oneWay"))),
          h("button", {
            type: "button", class: "btn", "data-testid": `chat-${c.username}`,
            onclick: async () => {
              try {
                const room = await api.direct(c.id);
                close(room.id);
              } catch (e) {
                err.textContent = errorText(e);
              }
            },
          }, t("contacts.chat")))) : [h("li", { class: "muted" }, t("contacts.none"))]));
      } catch (e) {
        err.textContent = errorText(e);
      }
    }
    load();
    return h("div", { class: "modal-body" },
      h("form", {
        class: "row",
        onsubmit: async (e) => {
          e.preventDefault();
          err.textContent = "";
          try {
            await api.addContact(username.value.trim());
            username.value = "";
            await load();
          } catch (e2) {
            err.textContent = e2.status === 404 ? t("contacts.notFound") : errorText(e2);
          }
        },
      }, username, h("button", { class: "btn primary", type: "submit", "data-testid": "add-contact" }, t("contacts.add"))),
      found, err, list);
  }, { testid: "contacts-dialog" });
  if (id) await openRoom(refresh, id);
}
