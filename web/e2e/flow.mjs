// The browser end-to-end flow of Moim's web client, in Debian's Chromium
// driven by Playwright: two people (Alice on a desktop, Bob on a phone)
// sign up, chat, lose and regain their connection, and pay dues.
//
//   node flow.mjs BASE_URL OUT_DIR
//
// BASE_URL is a running node (server/web_test.go starts one); screenshots
// and a summary go to OUT_DIR. Exits non-zero on the first failed check or
// on any console error. MOIM_CHROMIUM overrides /usr/bin/chromium.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node flow.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];
const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: "en-US" };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "ko-KR" };
const DELIVERY_MS = 1000; // the bound for seeing the other's message
const HISTORY = 120; // messages in the room Bob scrolls back through (pages of 50)

const tag = Math.random().toString(36).slice(2, 8);
const users = {
  alice: { username: `alice_${tag}`, display: "앨리스 Alice", password: "password-a1" },
  bob: { username: `bob_${tag}`, display: "밥 Bob", password: "password-b1" },
};
const consoleErrors = [];
const expectedErrors = [];
const pages = {};
const timings = {};
const shots = [];
const started = Date.now();

// step logs where the flow is, with the seconds since it started.
function step(what) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

const browser = await chromium.launch({ executablePath: process.env.MOIM_CHROMIUM || "/usr/bin/chromium", headless: true, args: FLAGS });
let failed = false;
try {
  await run();
} catch (err) {
  failed = true;
  console.error("FAIL:", err && err.stack ? err.stack : err);
  for (const [name, page] of Object.entries(pages)) {
    if (!page.isClosed()) await page.screenshot({ path: join(out, `failure-${name}.png`) }).catch(() => {});
  }
} finally {
  await browser.close();
}
writeFileSync(join(out, "summary.json"), JSON.stringify({ failed, timings, consoleErrors, expectedErrors, screenshots: shots }, null, 2));
if (consoleErrors.length) {
  console.error("console errors:\n  " + consoleErrors.join("\n  "));
  failed = true;
}
console.log(`screenshots: ${shots.map((s) => join(out, s)).join(" ")}`);
console.log(`delivery ms: ${JSON.stringify(timings)}`);
process.exit(failed ? 1 : 0);

async function run() {
  // --- sign up: Alice on a desktop, Bob on a phone in Korean ---
  step('sign up: Alice on a desktop, Bob on a phone in Korean');
  const aliceCtx = await browser.newContext(DESKTOP);
  const alice = await open(aliceCtx, "alice");
  await signup(alice, users.alice);
  let bobCtx = await browser.newContext(PHONE);
  let bob = await open(bobCtx, "bob");
  await signup(bob, users.bob);
  await check(await bob.locator("html").getAttribute("lang") === "ko", "Bob's phone (ko-KR) gets the Korean UI");

  // --- Bob adds Alice, so her room takes him in at once (someone who has
  // not would only be invited) ---
  step('Bob adds Alice as a contact');
  await bob.getByTestId("contacts").click();
  await bob.getByTestId("contact-username").fill(users.alice.username);
  await bob.getByTestId("add-contact").click();
  await bob.getByTestId("contact-list").getByText(users.alice.display).waitFor();
  await bob.keyboard.press("Escape");

  // --- Alice adds Bob as a contact and creates a room with him ---
  step('Alice adds Bob as a contact and creates a room with him');
  await alice.getByTestId("contacts").click();
  await alice.getByTestId("contact-username").fill(users.bob.username);
  await alice.getByTestId("add-contact").click();
  await alice.getByTestId("contact-list").getByText(users.bob.display).waitFor();
  await alice.keyboard.press("Escape");
  await alice.getByTestId("new-room").click();
  await alice.getByTestId("room-name").fill("등산 모임 Hiking Club");
  await alice.getByTestId(`member-${users.bob.username}`).check();
  await alice.getByTestId("create-room").click();
  await expectText(alice.getByTestId("chat-title"), "등산 모임 Hiking Club");

  // --- they exchange messages, each arriving within a second ---
  step('they exchange messages, each arriving within a second');
  const hello = "안녕하세요 Bob! 이번 주 토요일 북한산 어때요?";
  await say(alice, hello);
  // Bob's list learns of the room from its first message.
  const bobRoom = bob.getByTestId("room-item").filter({ hasText: "등산 모임" });
  await bobRoom.waitFor();
  await bobRoom.click();
  await body(bob, hello).waitFor();
  timings.bobToAlice = await deliver(bob, alice, "좋아요! Saturday works for me");
  timings.aliceToBob = await deliver(alice, bob, "Great, 9시에 정릉 입구에서 만나요.");

  // Reply quoting: Bob answers Alice's first message.
  const helloMsg = bob.getByTestId("msg").filter({ has: body(bob, hello) });
  await helloMsg.locator(".bubble").click(); // a tap shows the actions on a phone
  await helloMsg.getByTestId("reply").click();
  await say(bob, "네, 도시락 챙길게요");
  const reply = alice.getByTestId("msg").filter({ has: body(alice, "네, 도시락 챙길게요") });
  await expectText(reply.locator(".quote"), hello);

  // Typing indicator and read receipts.
  await alice.getByTestId("composer").pressSequentially("타이핑 중");
  await expectText(bob.getByTestId("typing"), users.alice.display);
  await alice.getByTestId("composer").fill("");
  await say(alice, "read receipt check");
  await expectText(alice.getByTestId("msg").filter({ has: body(alice, "read receipt check") }).getByTestId("read-by"), /1/);
  // Presence: both online in Alice's header.
  await expectCount(alice.locator("[data-testid=presence].online"), 2);

  // Deleting her own message blanks it for Bob too.
  await say(alice, "oops, wrong room");
  const oops = alice.getByTestId("msg").filter({ has: body(alice, "oops, wrong room") });
  await oops.hover();
  await oops.getByTestId("delete").click();
  await alice.getByTestId("delete-dialog").getByTestId("confirm-ok").click();
  await oops.waitFor({ state: "detached" });
  await expectCount(body(bob, "oops, wrong room"), 0);
  await expectCount(bob.locator(".msg.deleted"), 1);
  await shot(alice, "chat-desktop.png");
  await shot(bob, "chat-phone.png");

  // --- Bob goes away; Alice sends 5; Bob comes back and sees each once ---
  step('Bob goes away; Alice sends 5; Bob comes back and sees each once');
  await bobCtx.close();
  await expectCount(alice.locator("[data-testid=presence].online"), 1);
  const five = [1, 2, 3, 4, 5].map((i) => `오프라인 동안 보낸 메시지 ${i}/5 (sent while Bob was away)`);
  for (const text of five) await say(alice, text);
  for (const text of five) await expectCount(body(alice, text), 1);

  bobCtx = await browser.newContext(PHONE);
  const cut = await cuttable(bobCtx);
  bob = await open(bobCtx, "bob");
  await login(bob, users.bob);
  await expectText(bob.getByTestId("room-item").filter({ hasText: "등산 모임" }).getByTestId("unread"), "5");
  await shot(bob, "rooms-phone.png");
  await bob.getByTestId("room-item").filter({ hasText: "등산 모임" }).click();
  for (const text of five) await expectCount(body(bob, text), 1);
  await expectCount(body(bob, hello), 1);

  // --- the network drops: a banner, then nothing lost or doubled ---
  step('the network drops: a banner, then nothing lost or doubled');
  await cut.drop();
  await bob.getByTestId("offline-banner").waitFor();
  const during = ["끊긴 동안 1 (while Bob's network was down)", "끊긴 동안 2 (while Bob's network was down)"];
  for (const text of during) await say(alice, text);
  await say(bob, "지하철이라 끊겼어요 (sent while offline)");
  await shot(bob, "offline-phone.png");
  cut.restore();
  await bob.getByTestId("offline-banner").waitFor({ state: "hidden", timeout: 20000 });
  for (const text of during) await expectCount(body(bob, text), 1);
  await expectCount(body(alice, "지하철이라 끊겼어요 (sent while offline)"), 1);

  // The server's ack (and the msg) of Bob's next send are lost with the
  // connection: the client resends with the same cid after reconnecting,
  // and the message exists once.
  const retried = "ack lost, resent with the same cid";
  cut.loseAckOf(retried);
  await say(bob, retried);
  const cid = await cut.lost();
  await bob.getByTestId("offline-banner").waitFor({ state: "hidden", timeout: 20000 });
  await expectCount(body(alice, retried), 1);
  await expectCount(body(bob, retried), 1);
  await bob.getByTestId("pending").waitFor({ state: "detached" });
  await check(cut.sends(cid) >= 2, `the send was retried with the same cid (${cut.sends(cid)} frames with cid ${cid})`);
  for (const text of [...five, ...during]) await expectCount(body(bob, text), 1);

  // --- dues: Alice opens the fund and sets dues; Bob tops up and pays ---
  step('dues: Alice opens the fund and sets dues; Bob tops up and pays');
  await alice.getByTestId("open-dues").click();
  await alice.getByTestId("open-fund").click();
  await alice.getByTestId("fund-balance").waitFor();
  await alice.getByTestId("policy-amount").fill("30000");
  await alice.getByTestId("policy-period").selectOption("monthly");
  await alice.getByTestId("policy-day").fill("25");
  await alice.getByTestId("save-policy").click();
  const bobRowForAlice = alice.locator(`[data-testid=dues-row][data-user="${await userId(bob)}"]`);
  await bobRowForAlice.waitFor();
  await check(["unpaid", "overdue"].includes(await bobRowForAlice.getAttribute("data-state")), "Bob starts unpaid");

  await bob.getByTestId("open-dues").click();
  await bob.getByTestId("wallet-balance").waitFor();
  // The node runs embedded, so top-ups go through the sandbox: test money, labelled.
  await bob.getByTestId("test-money").waitFor();
  await bob.getByTestId("topup-amount").fill("50000");
  await bob.getByTestId("topup").click();
  await expectText(bob.getByTestId("wallet-balance"), "50,000");
  await bob.getByTestId("pay-dues").click();
  await expectText(bob.getByTestId("pay-dialog"), "30,000");
  await bob.getByTestId("pay-dialog").getByTestId("confirm-ok").click();
  const bobRowForBob = bob.locator(`[data-testid=dues-row][data-user="${await userId(bob)}"]`);
  await expectAttr(bobRowForBob, "data-state", "paid");
  await expectText(bob.getByTestId("wallet-balance"), "20,000");
  // Alice's open panel flips by itself when the fee event arrives.
  await expectAttr(bobRowForAlice, "data-state", "paid");
  await expectText(alice.getByTestId("fund-balance"), "30,000");
  await alice.locator("[data-testid=fee-card][data-event=dues]").filter({ hasText: "30,000" }).waitFor();
  await expectCount(alice.getByTestId("ledger-row"), 1);
  await bob.getByTestId("dues-panel").evaluate((el) => el.scrollTo(0, 0));
  await shot(bob, "dues-phone.png");

  // Both see the payment card in the chat.
  await bob.getByTestId("close-dues").click();
  await bob.locator("[data-testid=fee-card][data-event=dues]").filter({ hasText: "30,000" }).waitFor();
  await shot(bob, "fee-card-phone.png");

  // The ledger downloads as CSV.
  const [download] = await Promise.all([alice.waitForEvent("download"), alice.getByTestId("ledger-csv").click()]);
  const csv = readFileSync(await download.path(), "utf8");
  await check(csv.includes("30000") && csv.includes(users.bob.display), "the CSV lists Bob's 30000 dues");

  // A reminder names who has not paid (Alice herself) in the chat.
  const tools = alice.locator("details:has([data-testid=admin-tools])");
  if (!(await tools.evaluate((d) => d.open))) await alice.getByTestId("admin-tools").click();
  await alice.getByTestId("remind").click();
  await alice.locator("[data-testid=fee-card][data-event=reminder]").waitFor();
  await bob.locator("[data-testid=fee-card][data-event=reminder]").waitFor();
  await alice.getByTestId("dues-panel").evaluate((el) => el.scrollTo(0, 0));
  await shot(alice, "dues-desktop.png");
  const club = Number(/room\/(\d+)/.exec(alice.url())[1]);

  // --- money: Bob sets a wallet PIN, sends Alice money and withdraws ---
  step('money: Bob sets a wallet PIN, sends Alice money and withdraws');
  await bob.getByTestId("open-dues").click();
  await bob.getByTestId("wallet-balance").waitFor();
  await bob.getByTestId("pin-new").fill("482913");
  await bob.getByTestId("pin-save").click();
  await bob.getByTestId("pin-entry").waitFor();
  const send = async (amount) => {
    await bob.getByTestId("send-to").selectOption(String(await userId(alice)));
    await bob.getByTestId("send-amount").fill(amount);
    await bob.getByTestId("send-money").click();
    await bob.getByTestId("send-dialog").getByTestId("confirm-ok").click();
  };
  await send("5000"); // no PIN entered: refused (401 pin_required), nothing moves
  await bob.locator(".toast.error").waitFor();
  await expectText(bob.getByTestId("wallet-balance"), "20,000");
  await bob.getByTestId("pin-entry").fill("482913");
  await send("5000");
  await expectText(bob.getByTestId("wallet-balance"), "15,000");
  await bob.getByTestId("withdraw-amount").fill("5000");
  await bob.getByTestId("withdraw").click();
  await expectText(bob.getByTestId("wallet-balance"), "10,000");
  await bob.getByTestId("close-dues").click();

  // --- Bob finds a password-protected room and scrolls into its history ---
  step('Bob finds a password-protected room and scrolls into its history');
  const secretName = `비밀 산악회 Secret Alpine ${tag}`;
  const secret = await alice.evaluate(async ([n, name]) => {
    const auth = { Authorization: "Bearer " + localStorage.getItem("moim.token"), "Content-Type": "application/json" };
    const room = await (await fetch("/api/rooms", { method: "POST", headers: auth, body: JSON.stringify({ name, password: "pw-12345" }) })).json();
    for (let i = 1; i <= n; i++) {
      const body = JSON.stringify({ cid: "h" + i, body: "history " + String(i).padStart(3, "0") });
      const r = await fetch(`/api/rooms/${room.id}/messages`, { method: "POST", headers: auth, body });
      if (r.status !== 201) throw new Error("post history " + i + ": " + r.status);
    }
    return room.id;
  }, [HISTORY, secretName]);
  await bob.getByTestId("close-dues").isVisible() && (await bob.getByTestId("close-dues").click());
  await bob.locator(".chat-head .back").click();
  await bob.getByTestId("find-rooms").click();
  await bob.getByTestId("search-q").fill(`Alpine ${tag}`);
  await expectCount(bob.getByTestId("find-dialog").locator(".result"), 1); // the search has run
  const found = bob.getByTestId("find-dialog").locator(".result").filter({ hasText: "Secret Alpine" });
  await found.getByTestId("join").click();
  await found.getByTestId("join-password").fill("wrong-pass");
  await found.getByTestId("join").click();
  await found.locator(".error").filter({ hasText: /\S/ }).waitFor();
  await found.getByTestId("join-password").fill("pw-12345");
  await found.getByTestId("join").click();
  await expectText(bob.getByTestId("chat-title"), "Secret Alpine");
  await check(new URL(bob.url()).hash === `#/room/${secret}`, "Bob is in the secret room");
  // The newest page: 49 messages and the system line of Bob joining.
  await expectCount(bob.getByTestId("msg-body"), 49);
  await expectText(bob.getByTestId("system-msg").last(), users.bob.display);
  await expectCount(body(bob, `history ${HISTORY}`), 1);
  await expectCount(body(bob, "history 001"), 0);
  const messages = bob.getByTestId("messages");
  await until("the whole history is loaded by scrolling up", async () => {
    await messages.evaluate((el) => el.scrollTo(0, 0));
    const got = await bob.getByTestId("msg-body").count();
    return { ok: got === HISTORY, got };
  }, 20000);
  await expectText(bob.getByTestId("history-edge"), /\S/);
  const order = await bob.getByTestId("msg").evaluateAll((els) => els.map((e) => [Number(e.dataset.seq), e.querySelector("[data-testid=msg-body]").textContent]));
  await check(order.every(([seq, text], i) => seq === i + 1 && text === "history " + String(i + 1).padStart(3, "0")),
    "history shows every message once, in seq order");
  await shot(bob, "history-phone.png");

  // --- a 1:1 chat: Bob adds Alice and writes to her directly ---
  step('a 1:1 chat: Bob adds Alice and writes to her directly');
  await bob.locator(".chat-head .back").click();
  await bob.getByTestId("contacts").click();
  await bob.getByTestId("contact-username").fill(users.alice.username);
  await bob.getByTestId("add-contact").click();
  await bob.getByTestId(`chat-${users.alice.username}`).click();
  await expectText(bob.getByTestId("chat-title"), users.alice.display);
  await say(bob, "1:1 — 회비 보냈어요!");
  // By its last message too: the secret room's last line names Bob (he joined).
  const direct = alice.getByTestId("room-item").filter({ hasText: users.bob.display }).filter({ hasText: "1:1 — 회비 보냈어요!" });
  await direct.waitFor();
  await direct.click();
  await body(alice, "1:1 — 회비 보냈어요!").waitFor();
  // Bob's transfer is a card in their 1:1 chat, in Alice's language.
  await alice.locator("[data-testid=fee-card][data-event=transfer]").filter({ hasText: "5,000" }).waitFor();

  // --- settle before delete: the fund holds Bob's dues, so the room stays ---
  step('settle before delete: Alice refunds the fund to zero, then deletes the room');
  await alice.goto(new URL(`#/room/${club}`, alice.url()).href);
  await alice.getByTestId("open-dues").click();
  await expectText(alice.getByTestId("fund-balance"), "30,000");
  const admin = alice.locator("details:has([data-testid=admin-tools])");
  if (!(await admin.evaluate((d) => d.open))) await alice.getByTestId("admin-tools").click();
  await expectText(alice.getByTestId("delete-room-box"), "30,000");
  await alice.getByTestId("delete-room").click();
  await alice.getByTestId("delete-dialog").getByTestId("confirm-ok").click();
  await alice.locator(".toast.error").filter({ hasText: "30,000" }).waitFor(); // 409 fund_not_empty
  await alice.getByTestId("refund-who").selectOption(String(await userId(bob)));
  await alice.getByTestId("refund-amount").fill("30000");
  await alice.getByTestId("refund-memo").fill("모임 해산 정산");
  await alice.getByTestId("refund").click();
  await alice.getByTestId("confirm-ok").click();
  await expectText(alice.getByTestId("fund-balance"), /^\D*0\D*$/); // ₩0 / 0원
  await alice.getByTestId("delete-room").click();
  await alice.getByTestId("delete-dialog").getByTestId("confirm-ok").click();
  await until("the settled room is gone", async () => ({ ok: !/room\/\d+/.test(new URL(alice.url()).hash), got: alice.url() }));

  await aliceCtx.close();
  await bobCtx.close();
}

// expectedError is a refusal Chromium logs like any failed resource but
// that is part of the flow: the dues panel asks for the room's fund to
// learn whether there is one ("no fund yet" is 404 no_fund), the test
// tries a wrong room password once (403 wrong_password), a transfer
// without the wallet PIN (401 pin_required) and deleting a room whose
// fund holds money (409 fund_not_empty).
function expectedError(m) {
  const url = m.location().url;
  return (m.text().includes("status of 404") && /\/api\/rooms\/\d+\/fund$/.test(url)) ||
    (m.text().includes("status of 403") && /\/api\/rooms\/\d+\/join$/.test(url)) ||
    (m.text().includes("status of 401") && /\/api\/wallet\/transfers$/.test(url)) ||
    (m.text().includes("status of 409") && /\/api\/rooms\/\d+$/.test(url));
}

// open makes a page that records console errors and uncaught exceptions.
async function open(ctx, name) {
  ctx.setDefaultTimeout(10000);
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const line = `${name}: ${m.text()} (${m.location().url})`;
    if (expectedError(m)) expectedErrors.push(line);
    else consoleErrors.push(line);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${name}: uncaught ${e.message}`));
  pages[name] = page;
  await page.goto(base + "/");
  return page;
}

async function signup(page, u) {
  await page.getByTestId("auth-tab-signup").click();
  await page.getByTestId("auth-username").fill(u.username);
  await page.getByTestId("auth-display").fill(u.display);
  await page.getByTestId("auth-password").fill(u.password);
  await page.getByTestId("auth-submit").click();
  await expectText(page.getByTestId("me-name"), u.display);
}

async function login(page, u) {
  await page.getByTestId("auth-username").fill(u.username);
  await page.getByTestId("auth-password").fill(u.password);
  await page.getByTestId("auth-submit").click();
  await expectText(page.getByTestId("me-name"), u.display);
}

async function userId(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/me", { headers: { Authorization: "Bearer " + localStorage.getItem("moim.token") } });
    return (await r.json()).id;
  });
}

async function say(page, text) {
  await page.getByTestId("composer").fill(text);
  await page.getByTestId("composer").press("Enter");
}

// deliver sends text from one page and returns how long until the other
// shows it; more than DELIVERY_MS fails.
async function deliver(from, to, text) {
  await say(from, text);
  const start = Date.now();
  await body(to, text).waitFor({ timeout: DELIVERY_MS });
  return Date.now() - start;
}

function body(page, text) {
  const exact = new RegExp("^" + text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$");
  return page.getByTestId("msg-body").filter({ hasText: exact });
}

// cuttable routes the context's WebSocket through Playwright so the test
// can drop the connection (as a dead network would) and lose frames.
async function cuttable(ctx) {
  let blocked = false;
  let live = null;
  let loseText = "";
  let lostCid = "";
  let onLost = () => {};
  let lostPromise = null;
  const sent = new Map(); // cid -> send frames seen
  await ctx.routeWebSocket(/\/ws\?/, (ws) => {
    if (blocked) {
      ws.close({ code: 4000, reason: "network down (test)" });
      return;
    }
    const server = ws.connectToServer();
    const conn = { ws, server };
    live = conn;
    const drop = () => {
      server.close({ code: 1000 });
      ws.close({ code: 4000, reason: "network down (test)" });
    };
    conn.drop = drop;
    ws.onMessage((m) => {
      const f = JSON.parse(m);
      if (f.type === "send") sent.set(f.cid, (sent.get(f.cid) || 0) + 1);
      if (loseText && f.type === "send" && f.body === loseText) lostCid = f.cid;
      server.send(m);
    });
    server.onMessage((m) => {
      const f = JSON.parse(m);
      if (lostCid && f.cid === lostCid && (f.type === "ack" || f.type === "msg")) {
        if (f.type === "ack") {
          loseText = "";
          const cid = lostCid;
          lostCid = "";
          drop();
          onLost(cid);
        }
        return;
      }
      ws.send(m);
    });
    ws.onClose(() => server.close());
    server.onClose(() => ws.close());
  });
  return {
    drop: async () => {
      blocked = true;
      if (live) live.drop();
    },
    restore: () => {
      blocked = false;
    },
    loseAckOf: (text) => {
      loseText = text;
      lostPromise = new Promise((resolve) => (onLost = resolve));
    },
    lost: () => lostPromise,
    sends: (cid) => sent.get(cid) || 0,
  };
}

async function shot(page, name) {
  await page.locator("#toasts .toast").last().waitFor({ state: "detached", timeout: 4000 }).catch(() => {});
  await page.waitForTimeout(200); // let scrolling settle
  await page.screenshot({ path: join(out, name) });
  shots.push(name);
}

async function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
}

async function until(what, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return;
    if (Date.now() > end) throw new Error(`timed out: ${what} (last: ${JSON.stringify(last.got)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function expectText(locator, want, timeout) {
  await until(`${locator} has text ${want}`, async () => {
    const got = await locator.first().textContent({ timeout: 1000 }).catch(() => null);
    return { ok: got !== null && (want instanceof RegExp ? want.test(got) : got.includes(want)), got };
  }, timeout);
}

async function expectCount(locator, n, timeout) {
  await until(`${locator} count ${n}`, async () => {
    const got = await locator.count();
    return { ok: got === n, got };
  }, timeout);
}

async function expectAttr(locator, name, want, timeout) {
  await until(`${locator} ${name}=${want}`, async () => {
    const got = await locator.getAttribute(name, { timeout: 1000 }).catch(() => null);
    return { ok: got === want, got };
  }, timeout);
}
