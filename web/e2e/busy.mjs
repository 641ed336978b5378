// The web client against a node past its capacity (docs/PROTOCOL.md,
// error busy): the node under test refuses sends as busy whenever
// anything lags (MOIM_BUSY_LAG of 1 ns). Alice types messages in quick
// succession; each refused one stays shown as sending and goes again,
// same cid, once the longest wait named has passed, as the connection's
// first send after it (the one the node takes on its turn); refused ones
// and what she types meanwhile go one at a time, oldest first. In the
// end every message is shown once, sent, to her and to Bob.
//
//   node busy.mjs BASE_URL OUT_DIR
//
// kit.mjs holds what every flow shares (see there).
import {
  DESKTOP, PHONE, addContact, body, browser, check, createRoom, expectCount, open, runFlow, say, shot, signup,
  step, until, user,
} from "./kit.mjs";

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
};

await runFlow("busy.mjs", {}, run);

async function run() {
  step("sign up: Alice on a desktop, Bob on a phone; Alice creates a room with him");
  const aliceCtx = await browser.newContext(DESKTOP);
  // Alice's frames in the order her page meets them, on its own clock: a
  // frame received is logged by a listener that runs just before the
  // client's, in the same task, so a send logged after it was made
  // knowing of it (Playwright's frame events come from the network side,
  // ahead of the page's handling).
  await aliceCtx.addInitScript(() => {
    const frames = (window.__frames = []);
    window.WebSocket = class extends window.WebSocket {
      constructor(...args) {
        super(...args);
        this.addEventListener("message", (e) => frames.push({ at: performance.now(), out: false, data: e.data }));
      }
      send(data) {
        frames.push({ at: performance.now(), out: true, data });
        return super.send(data);
      }
    };
  });
  const alice = await open(aliceCtx, "alice");
  await signup(alice, users.alice);
  const bob = await open(await browser.newContext(PHONE), "bob");
  await signup(bob, users.bob);
  await addContact(bob, users.alice);
  await addContact(alice, users.bob);
  await createRoom(alice, "Busy night", users.bob);

  step("Alice types message after message while the node refuses sends as busy");
  const texts = [];
  const frameLog = async () => (await alice.evaluate(() => window.__frames)).map((f) => ({ ...f, ev: parse(f.data) }));
  let frames = [];
  const refusals = () => frames.filter((f) => !f.out && f.ev.type === "error" && f.ev.code === "busy").length;
  for (let i = 1; i <= 30 && (i <= 8 || refusals() < 3); i++) {
    const text = `busy ${i}`;
    texts.push(text);
    await say(alice, text);
    frames = await frameLog();
  }
  await check(refusals() >= 3, `the node refused some of Alice's ${texts.length} sends as busy (${refusals()} refusals)`);

  step(`every one of ${texts.length} messages is sent and shown once, to Alice and to Bob`);
  await until("Alice has nothing left sending", async () => {
    const got = await alice.getByTestId("pending").count();
    return { ok: got === 0, got };
  }, 60000);
  // Bob's list shows the room once a message of it reaches him.
  const room = bob.getByTestId("room-item").filter({ hasText: "Busy night" });
  await room.waitFor();
  await room.click();
  for (const text of texts) {
    await expectCount(body(alice, text), 1, 10000);
    await expectCount(body(bob, text), 1, 10000);
  }
  await shot(alice, "busy-desktop.png");

  step("each refused send went again after its wait, oldest first, before anything new");
  frames = await frameLog();
  const index = (f) => texts.indexOf(f.ev.body);
  const byCid = new Map(); // cid -> message index, from its send frames
  const refused = new Set(); // indexes refused as busy and not sent again yet
  const sent = new Set(); // indexes sent at least once
  const acked = new Set();
  let due = 0; // the page's time before which nothing may be sent
  for (const f of frames) {
    if (f.out && f.ev.type === "send") {
      const k = index(f);
      byCid.set(f.ev.cid, k);
      await check(f.at >= due - 0.2, `${texts[k]} sent ${(due - f.at).toFixed(1)} ms before a refusal's wait was over`);
      if (refused.size) {
        const oldest = Math.min(...refused);
        const skipped = texts.findIndex((_, j) => j < k && !sent.has(j));
        await check(k === oldest && skipped < 0,
          `${texts[k]} sent while ${[...refused].map((j) => texts[j]).join(", ")} waited to go again (oldest first, before anything new)`);
        refused.delete(k);
      }
      sent.add(k);
    } else if (!f.out && f.ev.type === "error" && f.ev.code === "busy") {
      refused.add(byCid.get(f.ev.cid));
      due = Math.max(due, f.at + f.ev.retry_after_ms);
    } else if (!f.out && f.ev.type === "ack") {
      acked.add(byCid.get(f.ev.cid));
    }
  }
  await check(acked.size === texts.length, `every message acked (${acked.size} of ${texts.length})`);
}

function parse(payload) {
  try {
    return JSON.parse(payload);
  } catch {
    return {};
  }
}
