// The browser flow of the club features (issue 20): Alice (desktop,
// English) and Bob (phone, Korean). Bob finds Alice by username and adds
// her, so her room takes him in at once; Carol, who has not added Alice,
// gets an invitation live and accepts it (pressed as a second one arrives,
// which she declines); Alice makes an invite link,
// Dan opens it and joins, and a revoked link refuses Eve; system lines
// render in each reader's language; Alice pins a notice and edits a
// message; Bob's list shows an unread-mention badge that clears when he
// reads; turning on member invites gives Bob the invite button.
//
//   node club.mjs BASE_URL OUT_DIR
import {
  DESKTOP, PHONE, body, browser, check, createRoom, expectCount, expectText, open, pressOn, runFlow, say, shot,
  signup, step, user, userId,
} from "./kit.mjs";

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
  carol: user("carol", "Carol"),
  dan: user("dan", "Dan"),
};

// The revoked link's 410 is provoked on purpose.
await runFlow("club.mjs", { expectedError: (m) => /status of 410/.test(m.text()) }, run);

async function run() {
  step("sign up: Alice on a desktop, Bob on a phone in Korean, Carol and Dan on desktops");
  const alice = await open(await browser.newContext(DESKTOP), "alice");
  await signup(alice, users.alice);
  const bob = await open(await browser.newContext(PHONE), "bob");
  await signup(bob, users.bob);
  const carol = await open(await browser.newContext(DESKTOP), "carol");
  await signup(carol, users.carol);

  step("Bob finds Alice by the start of her username and adds her");
  await bob.getByTestId("contacts").click();
  await bob.getByTestId("contact-username").fill(users.alice.username.slice(0, 8));
  await bob.getByTestId(`found-${users.alice.username}`).click();
  await bob.getByTestId("contact-list").getByText(users.alice.display, { exact: true }).waitFor();
  await bob.keyboard.press("Escape");

  step("Alice adds Bob and Carol, creates a room with Bob, and sees who has her too");
  await alice.getByTestId("contacts").click();
  for (const u of [users.bob, users.carol]) {
    await alice.getByTestId("contact-username").fill(u.username);
    await alice.getByTestId("add-contact").click();
    await alice.getByTestId("contact-list").getByText(u.display, { exact: true }).waitFor();
  }
  await expectText(alice.getByTestId("contact-list").locator("li", { hasText: users.bob.display }), "has you too");
  await alice.keyboard.press("Escape");
  await createRoom(alice, "Hiking Club", users.bob);

  step("Alice invites Carol, who does not have her as a contact: Carol gets it live and accepts");
  await alice.getByTestId("open-invite").click();
  await alice.getByTestId(`invite-${users.carol.username}`).check();
  await alice.getByTestId("invite-send").click();
  await carol.getByTestId("invitation").waitFor();
  await shot(carol, "club-invitation-desktop.png");
  // Carol presses Accept as a second invitation arrives (a room Alice makes
  // over the API, so her own view stays): the box repaints after the
  // release, and the press still accepts (a repaint under it lost it).
  const carolId = await userId(carol);
  await pressOn(carol, carol.getByTestId("invitation-accept"));
  await alice.evaluate(async (id) => {
    const r = await fetch("/api/rooms", {
      method: "POST",
      headers: { Authorization: "Bearer " + localStorage.getItem("moim.token"), "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Photo Walk", member_ids: [id] }),
    });
    if (r.status !== 201) throw new Error("create Photo Walk: " + r.status);
  }, carolId);
  // A beat for the invitation to reach Carol's page while she holds the press.
  await carol.waitForTimeout(500);
  await carol.mouse.up();
  await expectText(carol.getByTestId("chat-title"), "Hiking Club");
  await expectText(carol.getByTestId("invitation"), "Photo Walk");
  await carol.getByTestId("invitation-decline").click();
  await expectCount(carol.getByTestId("invitation"), 0);

  step("Alice makes an invite link; Dan opens it and joins");
  await alice.getByTestId("link-create").click();
  const url = await alice.getByTestId("link-url").inputValue();
  await check(url.includes("/#/invite/"), `invite link URL ${url}`);
  await alice.getByTestId("link-item").first().waitFor();
  await shot(alice, "club-invite-desktop.png");
  const danCtx = await browser.newContext(DESKTOP);
  const dan = await open(danCtx, "dan");
  await signup(dan, users.dan);
  await dan.goto(url);
  await dan.getByTestId("invite-join").click();
  await expectText(dan.getByTestId("chat-title"), "Hiking Club");

  step("system lines render in each reader's language");
  await alice.getByTestId("system-msg").filter({ hasText: `${users.dan.display} joined with ${users.alice.display}'s invite link.` }).waitFor();
  await alice.keyboard.press("Escape");
  await expectText(alice.getByTestId("room-item").filter({ hasText: "Hiking Club" }), `${users.dan.display} joined with`);
  await bob.getByTestId("room-item").filter({ hasText: "Hiking Club" }).click();
  await bob.getByTestId("system-msg").filter({ hasText: `${users.dan.display}님이 ${users.alice.display}님의 초대 링크로 들어왔습니다.` }).waitFor();
  await bob.getByTestId("system-msg").filter({ hasText: `${users.carol.display}님이 ${users.alice.display}님의 초대를 수락했습니다.` }).waitFor();

  step("a revoked link refuses with a clear message");
  await alice.getByTestId("open-invite").click();
  await alice.getByTestId("link-revoke").first().click();
  await alice.locator('[data-testid="link-item"][data-state="revoked"]').waitFor();
  await alice.keyboard.press("Escape");
  const eve = await open(await browser.newContext(DESKTOP), "eve");
  await signup(eve, user("eve", "Eve"));
  await eve.goto(url);
  await eve.getByTestId("invite-join").click();
  await expectText(eve.getByTestId("invite-status"), "This invite link was revoked.");

  step("Alice pins a notice and edits her message; Bob sees both live");
  await say(alice, "Saturday 9am at the gate");
  await body(alice, "Saturday 9am at the gate").waitFor();
  const mine = alice.getByTestId("msg").filter({ hasText: "Saturday 9am at the gate" });
  await mine.hover();
  await mine.getByTestId("pin").click();
  await expectText(bob.getByTestId("notice-body"), "Saturday 9am at the gate");
  await mine.hover();
  await mine.getByTestId("edit").click();
  await alice.getByTestId("edit-body").fill("Saturday 8am at the gate");
  await alice.getByTestId("edit-save").click();
  await body(bob, "Saturday 8am at the gate").waitFor();
  await expectText(bob.getByTestId("notice-body"), "Saturday 8am at the gate");
  await check(!(await bob.getByTestId("notice").textContent()).includes("null"), "Bob's notice banner has no stray text");
  await bob.getByTestId("msg").filter({ hasText: "Saturday 8am at the gate" }).getByTestId("edited").waitFor();

  step("a dues-rule change is a system line in each reader's language");
  await alice.evaluate(async () => {
    const room = location.hash.split("/")[2];
    const headers = { Authorization: "Bearer " + localStorage.getItem("moim.token"), "Content-Type": "application/json" };
    await fetch(`/api/rooms/${room}/fund`, { method: "POST", headers, body: JSON.stringify({ currency: "KRW" }) });
    const r = await fetch(`/api/rooms/${room}/dues`, { method: "PUT", headers, body: JSON.stringify({ amount: 30000, period: "monthly", due_day: 25 }) });
    if (!r.ok) throw new Error("set dues: " + r.status);
  });
  await alice.locator('[data-testid="system-msg"][data-event="dues_changed"]').filter({ hasText: "set the dues to ₩30,000, due on day 25 of each month" }).waitFor();
  await bob.locator('[data-testid="system-msg"][data-event="dues_changed"]').filter({ hasText: "회비를 ₩30,000(매월 25일 납부)으로 정했습니다" }).waitFor();

  step("a mention of Bob while he is away shows a badge and is highlighted; reading clears it");
  await bob.goto(bob.url().replace(/#.*$/, "#/"));
  await bob.getByTestId("room-list").waitFor();
  await say(alice, `@${users.bob.username} can you bring the map?`);
  const badge = bob.getByTestId("room-item").filter({ hasText: "Hiking Club" }).getByTestId("mention-badge");
  await expectText(badge, "@1");
  await shot(bob, "club-list-phone.png");
  await bob.getByTestId("room-item").filter({ hasText: "Hiking Club" }).click();
  await bob.locator(".msg.mentioned").filter({ hasText: "can you bring the map?" }).waitFor();
  await shot(bob, "club-chat-phone.png");
  await bob.goto(bob.url().replace(/#.*$/, "#/"));
  await expectCount(badge, 0);

  step("an admin turns on member invites; Bob (a member) then sees the invite button");
  await alice.getByTestId("open-invite").click();
  await alice.getByTestId("members-invite").check();
  await alice.keyboard.press("Escape");
  await bob.reload();
  await bob.getByTestId("room-item").filter({ hasText: "Hiking Club" }).click();
  await bob.getByTestId("open-invite").waitFor();
  await shot(alice, "club-chat-desktop.png");
  await alice.getByTestId("notice-clear").click();
  await expectCount(bob.locator('[data-testid="notice"]:not([hidden])'), 0);
}
