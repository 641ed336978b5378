// The treasurer's desk, room administration and message search in
// Debian's Chromium: a treasurer on a desktop (English), a member on a
// phone (Korean) and a newcomer on a desktop (Korean). axe-core checks
// every screen they see: no serious or critical violation.
//
//   node desk.mjs BASE_URL OUT_DIR
//
// kit.mjs holds what every flow shares (see there).
import {
  DESKTOP, PHONE, axe, browser, body, check, expectAttr, expectCount, expectText,
  open, runFlow, shot, signup, step, tag, until, user, userId,
} from "./kit.mjs";
import { readFileSync } from "node:fs";

const HISTORY = 130; // messages in the club, so search has to load history around its hit

const users = {
  treasurer: user("treasurer", "총무 Treasurer"),
  member: user("member", "회원 Member"),
  newcomer: user("newcomer", "신입 Newcomer"),
};

await runFlow("desk.mjs", { expectedError }, run);

// call is a REST request with the page's own session (for setting up
// what the flow does not look at).
function call(page, method, path, payload) {
  return page.evaluate(async ([method, path, payload]) => {
    const headers = { Authorization: "Bearer " + localStorage.getItem("moim.token") };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }, [method, path, payload]);
}

async function run() {
  // --- three people sign up; axe on the log-in screen of each language ---
  step("sign up: treasurer (desktop, en), member (phone, ko), newcomer (desktop, ko)");
  const tCtx = await browser.newContext(DESKTOP);
  // A click on the tools' summary fires its toggle event a task later, so
  // a reload can draw the panel anew first (CI saw it once). Here no toggle
  // event reaches the page at all, and the tools opened below must still
  // stay open across the reloads that follow.
  await tCtx.addInitScript(() => window.addEventListener("toggle", (e) => e.stopImmediatePropagation(), true));
  const treasurer = await open(tCtx, "treasurer");
  await axe(treasurer, "log-in (en)");
  await signup(treasurer, users.treasurer);
  const mCtx = await browser.newContext(PHONE);
  const member = await open(mCtx, "member");
  await axe(member, "log-in (ko, phone)");
  await signup(member, users.member);
  const nCtx = await browser.newContext({ ...DESKTOP, locale: "ko-KR", timezoneId: "America/New_York" });
  const newcomer = await open(nCtx, "newcomer");
  // Keyboard only: the sign-up tab, then fields and Enter.
  await newcomer.keyboard.press("Shift+Tab"); // from the username field back to the tabs
  await newcomer.keyboard.press("Enter"); // "sign up"
  await newcomer.getByTestId("auth-display").waitFor();
  await newcomer.getByTestId("auth-username").focus();
  await newcomer.keyboard.type(users.newcomer.username);
  await newcomer.keyboard.press("Tab");
  await newcomer.keyboard.type(users.newcomer.display);
  await newcomer.keyboard.press("Tab");
  await newcomer.keyboard.type(users.newcomer.password);
  await newcomer.keyboard.press("Enter");
  await expectText(newcomer.getByTestId("me-name"), users.newcomer.display);
  await axe(newcomer, "room list (ko)");

  // The club: set up through the API (the first flow covers doing it by hand).
  const ids = { treasurer: await userId(treasurer), member: await userId(member), newcomer: await userId(newcomer) };
  await call(member, "POST", "/api/contacts", { username: users.treasurer.username });
  const club = await call(treasurer, "POST", "/api/rooms", { name: `테니스 클럽 Tennis ${tag}`, description: "Saturday doubles", member_ids: [ids.member] });
  await call(treasurer, "POST", `/api/rooms/${club.id}/fund`, { currency: "KRW" });
  await call(treasurer, "PUT", `/api/rooms/${club.id}/dues`, { amount: 30000, period: "monthly", due_day: 25 });
  await treasurer.evaluate(async ([room, n]) => {
    const auth = { Authorization: "Bearer " + localStorage.getItem("moim.token"), "Content-Type": "application/json" };
    for (let i = 1; i <= n; i++) {
      const r = await fetch(`/api/rooms/${room}/messages`, { method: "POST", headers: auth, body: JSON.stringify({ cid: "d" + i, body: `court note ${String(i).padStart(3, "0")}` }) });
      if (r.status !== 201) throw new Error("post " + i + ": " + r.status);
    }
  }, [club.id, HISTORY]);
  await call(member, "POST", "/api/wallet/topups", { amount: 100000, idempotency_key: `desk-topup-${tag}` });

  // --- the newcomer finds the club and joins ---
  step("the newcomer finds the club and joins");
  await newcomer.getByTestId("find-rooms").click();
  await newcomer.getByTestId("search-q").fill(`Tennis ${tag}`);
  const found = newcomer.getByTestId("find-dialog").locator(".result").filter({ hasText: "Tennis" });
  await found.waitFor();
  await axe(newcomer, "find rooms dialog (ko)");
  await found.getByTestId("join").click();
  await expectText(newcomer.getByTestId("chat-title"), "Tennis");
  await axe(newcomer, "chat (ko, desktop)");

  // --- the member pays this month's dues: a fee card in the chat ---
  step("the member pays dues on the phone; the treasurer sees the card");
  await member.getByTestId("room-item").filter({ hasText: "Tennis" }).click();
  await member.getByTestId("open-dues").click();
  await member.getByTestId("pay-dues").click();
  await member.getByTestId("pay-dialog").getByTestId("confirm-ok").click();
  await expectAttr(member.locator(`[data-testid=dues-row][data-user="${ids.member}"]`), "data-state", "paid");
  await axe(member, "dues panel (ko, phone)");

  await treasurer.goto(new URL(`#/room/${club.id}`, treasurer.url()).href);
  await expectText(treasurer.getByTestId("chat-title"), "Tennis");
  await treasurer.locator("[data-testid=fee-card][data-event=dues]").filter({ hasText: "30,000" }).waitFor();
  await axe(treasurer, "chat with a fee card (en)");
  await shot(treasurer, "chat-fee-card-desktop.png");

  // --- the treasurer's desk: cash, waiver, rule, audit ---
  step("treasurer's desk: record cash, waive, change the rule, read the audit log");
  await treasurer.getByTestId("open-dues").click();
  const desk = treasurer.getByTestId("desk");
  await desk.waitFor();
  await expectText(treasurer.getByTestId("desk-rule-now"), "30,000");
  await expectText(treasurer.getByTestId("desk-rule-next"), /\S/);
  // Keyboard only: the cash form from its first control to Enter.
  await treasurer.getByTestId("desk-record-who").focus();
  await treasurer.getByTestId("desk-record-who").selectOption(String(ids.newcomer));
  await treasurer.keyboard.press("Tab"); // period (this month, filled in)
  await treasurer.keyboard.press("Tab"); // amount (the dues, filled in)
  await treasurer.keyboard.press("Tab");
  await treasurer.keyboard.type("현금 cash at the court");
  await treasurer.keyboard.press("Enter");
  await expectAttr(treasurer.locator(`[data-testid=dues-row][data-user="${ids.newcomer}"]`), "data-state", "paid");
  // The member is excused next month.
  const period = await treasurer.getByTestId("desk-waive-period").inputValue();
  const [y, mo] = period.split("-").map(Number);
  const nextMonth = mo === 12 ? `${y + 1}-01` : `${y}-${String(mo + 1).padStart(2, "0")}`;
  await treasurer.getByTestId("desk-waive-who").selectOption(String(ids.member));
  await treasurer.getByTestId("desk-waive-period").fill(nextMonth);
  await treasurer.getByTestId("desk-waive-memo").fill("부상 injured");
  await treasurer.getByTestId("desk-waive-save").click();
  await expectCount(treasurer.locator("[data-testid=audit-row][data-action=waiver]"), 1);
  // The rule changes from next month: now and next both shown.
  const tools = treasurer.locator("details:has([data-testid=admin-tools])");
  if (!(await tools.evaluate((d) => d.open))) await treasurer.getByTestId("admin-tools").click();
  await treasurer.getByTestId("policy-amount").fill("35000");
  // A fee event reloads the panel while the new amount is typed but not
  // saved (the first of the ledger's spends below): what was typed stays.
  const balance = await treasurer.getByTestId("fund-balance").textContent();
  await call(treasurer, "POST", `/api/rooms/${club.id}/fund/spend`, { amount: 100, memo: "공 구입 balls 1", idempotency_key: `desk-spend-${tag}-1` });
  await until("the panel reloads after the spend", async () => {
    const got = await treasurer.getByTestId("fund-balance").textContent();
    return { ok: got !== balance, got };
  });
  await until("the typed amount survives the reload", async () => {
    const got = await treasurer.getByTestId("policy-amount").inputValue();
    return { ok: got === "35000", got };
  });
  await treasurer.getByTestId("save-policy").click();
  await expectText(treasurer.getByTestId("desk-rule-next"), "35,000");
  await expectText(treasurer.getByTestId("desk-rule-now"), "30,000");
  // The audit log: rule, rule, record, waiver; filtered by kind and member.
  await expectCount(treasurer.getByTestId("audit-row"), 4);
  await treasurer.getByTestId("audit-kind").selectOption("record");
  await expectCount(treasurer.getByTestId("audit-row"), 1);
  await expectText(treasurer.getByTestId("audit-row"), users.newcomer.display);
  await treasurer.getByTestId("audit-kind").selectOption("");
  await treasurer.getByTestId("audit-member").selectOption(String(ids.member));
  await expectCount(treasurer.getByTestId("audit-row"), 1);
  await expectAttr(treasurer.getByTestId("audit-row"), "data-action", "waiver");
  await treasurer.getByTestId("audit-member").selectOption("");
  await axe(treasurer, "dues panel with the treasurer's desk (en)");

  // --- ledger: pages of 20 and the CSV ---
  step("ledger: pages of 20, older entries on request, CSV");
  for (let i = 2; i <= 21; i++) {
    await call(treasurer, "POST", `/api/rooms/${club.id}/fund/spend`, { amount: 100, memo: `공 구입 balls ${i}`, idempotency_key: `desk-spend-${tag}-${i}` });
  }
  await treasurer.getByTestId("close-dues").click();
  await treasurer.getByTestId("open-dues").click();
  // First page: 20 wallet lines plus the 2 off-wallet lines (cash, waiver).
  await expectCount(treasurer.getByTestId("ledger-row"), 22);
  await treasurer.getByTestId("ledger-more").click();
  await expectCount(treasurer.getByTestId("ledger-row"), 24); // 21 spends, the dues, the cash, the waiver
  await treasurer.getByTestId("ledger-more").waitFor({ state: "hidden" });
  const [download] = await Promise.all([treasurer.waitForEvent("download"), treasurer.getByTestId("ledger-csv").click()]);
  const csv = readFileSync(await download.path(), "utf8");
  await check(csv.includes("balls 21") && csv.includes(users.member.display), "the CSV has every line");

  // --- a reminder ---
  step("reminder");
  if (!(await tools.evaluate((d) => d.open))) await treasurer.getByTestId("admin-tools").click();
  // The treasurer has picked whom to hand the club over to when the
  // reminder's fee event redraws the panel: the pick stays.
  await treasurer.getByTestId("owner-who").selectOption(String(ids.newcomer));
  const picked = await treasurer.getByTestId("owner-who").elementHandle();
  await treasurer.getByTestId("remind").click();
  await member.locator("[data-testid=fee-card][data-event=reminder]").waitFor({ state: "attached" });
  await until("the dues panel redrawn after the reminder", async () => ({ ok: !(await picked.evaluate((e) => e.isConnected)) }));
  const pick = await treasurer.getByTestId("owner-who").inputValue();
  await check(pick === String(ids.newcomer), `the hand-over pick reads ${pick} after the panel's reload, want the newcomer's ${ids.newcomer}`);

  // --- auto-pay: the member sets up and cancels their own; the treasurer sees them ---
  step("auto-pay: the member's own orders, the treasurer's view of all");
  const autopay = member.getByTestId("autopay");
  await autopay.scrollIntoViewIfNeeded();
  await member.getByTestId("autopay-day").fill("25");
  await member.getByTestId("autopay-create").click();
  await expectCount(member.getByTestId("autopay-row"), 1);
  await expectText(member.getByTestId("autopay-next"), /25/);
  await member.getByTestId("autopay-once").check();
  const soon = new Date(Date.now() + 3 * 86400000).toISOString().slice(0, 10);
  await member.getByTestId("autopay-date").fill(soon);
  await member.getByTestId("autopay-amount").fill("5000");
  await member.getByTestId("autopay-create").click();
  await expectCount(member.getByTestId("autopay-row"), 2);
  await member.locator("[data-testid=autopay-row][data-state=active]").first().getByTestId("autopay-cancel").click();
  await member.getByTestId("autopay-cancel-dialog").getByTestId("confirm-ok").click();
  await expectCount(member.locator("[data-testid=autopay-row][data-state=cancelled]"), 1);
  await member.getByTestId("autopay").scrollIntoViewIfNeeded();
  await axe(member, "auto-pay (ko, phone)");
  await shot(member, "autopay-phone.png");

  await treasurer.getByTestId("close-dues").click();
  await treasurer.getByTestId("open-dues").click();
  await expectCount(treasurer.locator(`[data-testid=autopay-row][data-user="${ids.member}"]`), 2);
  await expectCount(treasurer.locator(`[data-testid=autopay-row][data-user="${ids.member}"] [data-testid=autopay-cancel]`), 0);
  await treasurer.getByTestId("desk").scrollIntoViewIfNeeded();
  await shot(treasurer, "desk-desktop.png");

  // The newcomer is not an admin: no desk, their own auto-pay only.
  await newcomer.getByTestId("open-dues").click();
  await newcomer.getByTestId("autopay").waitFor();
  await expectCount(newcomer.getByTestId("desk"), 0);
  await expectCount(newcomer.getByTestId("autopay-row"), 0);
  await axe(newcomer, "dues panel (ko, not an admin)");

  // --- room administration ---
  step("room administration: roles, settings, remove and lift a ban, 1:1 from a name");
  await treasurer.getByTestId("close-dues").click();
  await treasurer.getByTestId("open-admin").click();
  const memberRow = treasurer.locator(`[data-testid=admin-member][data-user="${ids.member}"]`);
  await memberRow.waitFor();
  await memberRow.getByTestId("admin-promote").click();
  await expectAttr(memberRow, "data-role", "admin");
  await memberRow.getByTestId("admin-demote").click();
  await expectAttr(memberRow, "data-role", "member");
  await treasurer.getByTestId("admin-description").fill("토요일 복식 Saturday doubles, 9시");
  await treasurer.getByTestId("admin-password").fill("court-2026");
  await treasurer.getByTestId("admin-save").click();
  await until("the room has a password", async () => {
    const r = await call(treasurer, "GET", `/api/rooms/${club.id}`);
    return { ok: r.has_password && r.description.startsWith("토요일"), got: r };
  });
  const newcomerRow = treasurer.locator(`[data-testid=admin-member][data-user="${ids.newcomer}"]`);
  await newcomerRow.getByTestId("admin-remove").click();
  await treasurer.getByTestId("remove-dialog").getByTestId("confirm-ok").click();
  await newcomerRow.waitFor({ state: "detached" });
  const ban = treasurer.locator(`[data-testid=admin-ban][data-user="${ids.newcomer}"]`);
  await ban.waitFor();
  // The owner's delete says the fund must be settled first (₩30,000 dues − 21 × ₩100 spent).
  await expectText(treasurer.getByTestId("delete-room-box"), "27,900");
  await axe(treasurer, "room panel (en)");
  await shot(treasurer, "admin-desktop.png");
  await ban.getByTestId("admin-unban").click();
  await ban.waitFor({ state: "detached" });
  // Unbanned, the newcomer joins again with the new password.
  await call(newcomer, "POST", `/api/rooms/${club.id}/join`, { password: "court-2026" });
  await memberRow.getByTestId("admin-direct").click();
  await expectText(treasurer.getByTestId("chat-title"), users.member.display);

  // The member (not an admin) sees the members, without the controls.
  await member.goto(new URL(`#/room/${club.id}/admin`, member.url()).href);
  await member.getByTestId("admin-members").waitFor();
  await expectCount(member.getByTestId("admin-settings"), 0);
  await expectCount(member.getByTestId("admin-remove"), 0);
  await axe(member, "room panel (ko, phone, member)");

  step("ownership in the room panel: the treasurer hands the club to the member, who hands it back");
  await treasurer.goto(new URL(`#/room/${club.id}/admin`, treasurer.url()).href);
  await treasurer.getByTestId("owner-box").waitFor();
  await treasurer.getByTestId("owner-who").selectOption({ label: users.member.display });
  await treasurer.getByTestId("transfer-owner").focus();
  await treasurer.keyboard.press("Enter");
  await treasurer.getByTestId("owner-dialog").waitFor();
  await axe(treasurer, "hand the room over: confirm (en)");
  await treasurer.getByTestId("owner-dialog").getByTestId("confirm-ok").click();
  const treasurerRow = treasurer.locator(`[data-testid=admin-member][data-user="${ids.treasurer}"]`);
  await expectAttr(memberRow, "data-role", "owner");
  await expectAttr(treasurerRow, "data-role", "admin");
  // An admin now: the owner's controls are gone, the admin's stay.
  await expectCount(treasurer.getByTestId("owner-box"), 0);
  await expectCount(treasurer.getByTestId("delete-room-box"), 0);
  await expectCount(treasurer.getByTestId("admin-promote"), 0);
  await treasurer.getByTestId("admin-settings").waitFor();
  // The member opens the panel again as the owner, in Korean, and hands it back.
  await member.reload();
  await member.getByTestId("owner-box").waitFor();
  await expectText(member.getByTestId("owner-box"), "방장 넘기기");
  await axe(member, "room panel (ko, phone, owner)");
  await member.getByTestId("owner-who").selectOption({ label: users.treasurer.display });
  await member.getByTestId("transfer-owner").click();
  await member.getByTestId("owner-dialog").getByTestId("confirm-ok").click();
  await expectAttr(member.locator(`[data-testid=admin-member][data-user="${ids.treasurer}"]`), "data-role", "owner");
  await expectCount(member.getByTestId("owner-box"), 0);
  await shot(member, "admin-handover-phone.png");

  // --- message search: a hit far back in history, shown in context ---
  step("message search: the member finds an old message and sees it in context");
  await member.goto(new URL(`#/room/${club.id}`, member.url()).href);
  await expectText(member.getByTestId("chat-title"), "Tennis");
  await expectCount(body(member, "court note 007"), 0); // not loaded yet
  await member.getByTestId("open-search").focus();
  await member.keyboard.press("Enter");
  await member.getByTestId("msg-search-q").waitFor();
  await member.keyboard.type("note 007");
  const hit = member.getByTestId("msg-search-hit").filter({ hasText: "court note 007" });
  await hit.waitFor();
  await axe(member, "message search (ko, phone)");
  await hit.focus();
  await member.keyboard.press("Enter");
  const target = body(member, "court note 007");
  await target.waitFor();
  await until("the hit is on screen", async () => {
    const box = await target.boundingBox();
    return { ok: !!box && box.y > 0 && box.y < 844, got: box };
  });
  await expectCount(body(member, "court note 006"), 1);
  await expectCount(body(member, "court note 008"), 1);
  // Nothing between the hit and the newest message is missing.
  const seqs = await member.locator(".msg-list > [data-seq]").evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  await check(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1), `history around the hit has no gaps (${seqs[0]}…${seqs[seqs.length - 1]})`);
  await shot(member, "search-phone.png");

  await tCtx.close();
  await mCtx.close();
  await nCtx.close();
}

// expectedError is a refusal Chromium logs like any failed resource but
// that is part of the flow: none so far beyond the first flow's "no fund
// yet" lookup (404 no_fund) of a room without a fund.
function expectedError(m) {
  const url = m.location().url;
  return m.text().includes("status of 404") && /\/api\/rooms\/\d+\/fund$/.test(url);
}
