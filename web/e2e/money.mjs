// The money flow of Moim's web client beyond flow.mjs: the owner hands a
// room over to its new treasurer from the dues panel
// (PUT /api/rooms/{id}/owner) and stays on as an admin.
//
//   node money.mjs BASE_URL OUT_DIR
//
// kit.mjs holds what every flow shares (see there).
import {
  DESKTOP, PHONE, addContact, browser, check, createRoom, expectText, open, runFlow, shot, signup, step, user,
} from "./kit.mjs";

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
};

await runFlow("money.mjs", { expectedError }, run);

// A room without a fund answers 404 no_fund, which the dues panel shows as
// "no fund yet".
function expectedError(m) {
  return m.text().includes("status of 404") && /\/api\/rooms\/\d+\/fund$/.test(m.location().url);
}

async function run() {
  step("sign up: Alice on a desktop, Bob on a phone in Korean");
  const alice = await open(await browser.newContext(DESKTOP), "alice");
  await signup(alice, users.alice);
  const bob = await open(await browser.newContext(PHONE), "bob");
  await signup(bob, users.bob);

  step("Bob adds Alice as a contact; Alice creates a club room with him");
  await addContact(bob, users.alice);
  await addContact(alice, users.bob);
  await createRoom(alice, "테니스 동호회 Tennis", users.bob);

  step("Alice hands the room over to Bob from the dues panel");
  await alice.getByTestId("open-dues").click();
  const admin = alice.locator("details:has([data-testid=admin-tools])");
  if (!(await admin.evaluate((d) => d.open))) await alice.getByTestId("admin-tools").click();
  await alice.getByTestId("delete-room-box").waitFor();
  await alice.getByTestId("owner-who").selectOption({ label: users.bob.display });
  await alice.getByTestId("transfer-owner").click();
  await alice.getByTestId("owner-dialog").getByTestId("confirm-ok").click();
  await alice.locator(".toast").filter({ hasText: users.bob.display }).waitFor();
  // Alice is an admin now: the owner's controls are gone, the admin's stay.
  await alice.getByTestId("owner-box").waitFor({ state: "detached" });
  await check(await alice.getByTestId("delete-room-box").count() === 0, "Alice no longer sees the owner's delete control");
  await alice.getByTestId("save-policy").waitFor();
  await shot(alice, "owner-handover.png");

  step("Bob, the new owner, gets the owner's controls");
  const room = bob.getByTestId("room-item").filter({ hasText: "테니스 동호회" });
  await room.waitFor();
  await room.click();
  await bob.getByTestId("open-dues").click();
  const bobAdmin = bob.locator("details:has([data-testid=admin-tools])");
  if (!(await bobAdmin.evaluate((d) => d.open))) await bob.getByTestId("admin-tools").click();
  await bob.getByTestId("delete-room-box").waitFor();
  await expectText(bob.getByTestId("owner-box"), "방장 넘기기");
}
