// Message search in a room: a dialog that searches the room's stored
// messages as the user types and, on a pick, asks the chat to show that
// message in context (a "jump" bus event).
import { api } from "./api.js";
import { emit } from "./state.js";
import { h, modal, errorText, clock, day } from "./ui.js";
import { t } from "./i18n.js";

export async function searchMessages(room) {
  const seq = await modal(t("search.title"), (close) => {
    const q = h("input", { type: "search", maxlength: 100, "aria-label": t("search.title"), placeholder: t("search.hint"), "data-testid": "msg-search-q" });
    const status = h("p", { class: "muted small", role: "status" });
    const results = h("ul", { class: "results", "data-testid": "msg-search-results" });
    let n = 0;
    async function run() {
      const mine = ++n;
      const text = q.value.trim();
      if (!text) {
        results.replaceChildren();
        status.textContent = "";
        return;
      }
      try {
        const found = await api.searchMessages(room, text);
        if (mine !== n) return;
        status.textContent = found.length ? t("search.count", found.length) : t("search.none");
        results.replaceChildren(...found.map((m) => h("li", {},
          h("button", { type: "button", class: "result hit", "data-testid": "msg-search-hit", "data-seq": m.seq, onclick: () => close(m.seq) },
            h("span", { class: "grow" }, h("strong", {}, m.name || t("chat.system")), h("span", { class: "hit-body" }, m.body)),
            h("time", { class: "muted small", datetime: new Date(m.ts).toISOString() }, `${day(m.ts)} ${clock(m.ts)}`)))));
      } catch (e) {
        if (mine === n) status.textContent = errorText(e);
      }
    }
    let timer;
    q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, 250);
    });
    q.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        clearTimeout(timer);
        run();
      }
    });
    return h("div", { class: "modal-body" }, q, status, results);
  }, { testid: "msg-search-dialog" });
  if (seq) emit("jump", { room, seq });
}
