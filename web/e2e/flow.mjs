// The browser end-to-end flow of Moim's web client, in Debian's Chromium
// driven by Playwright: two people (Alice on a desktop, Bob on a phone)
// sign up, chat, lose and regain their connection, and pay dues; a room
// pressed as a message reorders the list still opens.
//
//   node flow.mjs BASE_URL OUT_DIR
//
// kit.mjs holds what every flow shares (see there).
import {
  DESKTOP, PHONE, addContact, body, browser, check, createRoom, cuttable, deliver, expectAttr, expectCount,
  expectText, login, open, pressOn, runFlow, say, shot, signup, step, tag, timings, until, user, userId,
} from "./kit.mjs";
import { readFileSync } from "node:fs";

const HISTORY = 120; // messages in the room Bob scrolls back through (pages of 50)

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
};

await runFlow("flow.mjs", { expectedError }, run);

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
  await addContact(bob, users.alice);

  // --- Alice adds Bob as a contact and creates a room with him ---
  step('Alice adds Bob as a contact and creates a room with him');
  await addContact(alice, users.bob);
  await createRoom(alice, "등산 모임 Hiking Club", users.bob);

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
  const marks = cut.marks(cid);
  await check(!marks[0] && marks.slice(1).every(Boolean), `the first send went unmarked and each retry marked "resend" (marks ${marks})`);
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
  // The reload after the refusal is held back (its dues status answered
  // late) until the next send's own reload has shown the new balance: the
  // older reload, which read the wallet before the send, must not paint
  // the balance back (as it did once in CI on a slow host).
  let releaseStale;
  const staleHeld = new Promise((resolve) => (releaseStale = resolve));
  let staleShown;
  const staleDone = new Promise((resolve) => (staleShown = resolve));
  let held = false;
  await bob.route("**/dues/status", async (route) => {
    if (held) return route.continue();
    held = true;
    const answer = await route.fetch();
    await staleHeld;
    await route.fulfill({ response: answer });
    staleShown();
  });
  await send("5000"); // no PIN entered: refused (401 pin_required), nothing moves
  await bob.locator(".toast.error").waitFor();
  await expectText(bob.getByTestId("wallet-balance"), "20,000");
  await bob.getByTestId("pin-entry").fill("482913");
  await send("5000");
  await expectText(bob.getByTestId("wallet-balance"), "15,000");
  releaseStale();
  await staleDone;
  await bob.waitForTimeout(300);
  await expectText(bob.getByTestId("wallet-balance"), "15,000", 1);
  await bob.unroute("**/dues/status");
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
  // Alice presses the chat as Bob's next line reorders her list: rebuilt
  // under the press, the list lost the tap; now it still opens the chat.
  await pressOn(alice, direct);
  await say(bob, "지금 보여요?");
  // A beat for the line to reach Alice's page while she holds the press.
  await alice.waitForTimeout(500);
  await alice.mouse.up();
  await expectText(alice.getByTestId("chat-title"), users.bob.display);
  await body(alice, "지금 보여요?").waitFor();
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
  // Alice fills the refund in as her reminder's answer and its fee event
  // reload the panel, which draws the form anew: what she chose and typed
  // stays, and so does her place in it (keystrokes after a reload went
  // nowhere, and the form came back empty).
  const reloads = [];
  const countReload = (r) => { if (/\/api\/rooms\/\d+\/fund$/.test(r.url())) reloads.push(r.url()); };
  const bobId = String(await userId(bob));
  await alice.getByTestId("remind").click();
  alice.on("request", countReload);
  await alice.getByTestId("refund-who").selectOption(bobId);
  await alice.getByTestId("refund-amount").click();
  await alice.keyboard.type("30000", { delay: 150 });
  await alice.keyboard.press("Tab");
  await alice.keyboard.type("모임 해산 정산", { delay: 150 });
  alice.off("request", countReload);
  await check(reloads.length > 0, "the dues panel reloaded while Alice typed the refund");
  const refundTyped = [
    await alice.getByTestId("refund-who").inputValue(),
    await alice.getByTestId("refund-amount").inputValue(),
    await alice.getByTestId("refund-memo").inputValue(),
  ];
  await check(JSON.stringify(refundTyped) === JSON.stringify([bobId, "30000", "모임 해산 정산"]),
    `the refund form reads ${JSON.stringify(refundTyped)} after ${reloads.length} reloads under typing`);
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
