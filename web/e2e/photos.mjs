// The browser flow of attachments (issue 20, item 7): Alice on a desktop
// attaches a photo (previewed before sending) and a file; Bob on a phone
// sees the photo as a thumbnail, opens it full size with the keyboard and
// gets the file as a download chip; Alice deletes her photo (by keyboard,
// after a confirm) and Bob sees it gone at once and after a reload; Alice
// spends from the fund with a receipt photo, which the ledger and the fee
// card link, pressing Spend as Bob's payment reloads her panel. axe-core
// checks the chat and the confirm.
//
//   node photos.mjs BASE_URL OUT_DIR
import {
  DESKTOP, PHONE, addContact, axe, body, browser, check, createRoom, expectCount, expectText, open, pressOn,
  runFlow, say, shot, signup, step, until, user,
} from "./kit.mjs";
import { deflateSync } from "node:zlib";

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
};

await runFlow("photos.mjs", { expectedError }, run);

async function run() {
  step("sign up: Alice on a desktop, Bob on a phone in Korean; a room of two");
  const aliceCtx = await browser.newContext(DESKTOP);
  await ackFirst(aliceCtx);
  const alice = await open(aliceCtx, "alice");
  await signup(alice, users.alice);
  const bobCtx = await browser.newContext(PHONE);
  const bob = await open(bobCtx, "bob");
  await signup(bob, users.bob);
  await addContact(bob, users.alice);
  await addContact(alice, users.bob);
  await createRoom(alice, "사진 모임 Photo Club", users.bob);
  await say(alice, "사진 올릴게요");
  const bobRoom = bob.getByTestId("room-item").filter({ hasText: "사진 모임" });
  await bobRoom.waitFor();
  await bobRoom.click();
  await body(bob, "사진 올릴게요").waitFor();

  step("Alice attaches a photo: a preview first, then it uploads and sends with a caption");
  await alice.getByTestId("attach-input").setInputFiles({ name: "산행.png", mimeType: "image/png", buffer: png(320, 200) });
  await alice.getByTestId("attach-preview-img").waitFor();
  await check(await alice.getByTestId("attach").getAttribute("aria-label") !== null, "the attach button has a label");
  // Removing it and choosing again, by keyboard: the chosen file is dropped.
  await alice.getByTestId("attach-remove").focus();
  await alice.keyboard.press("Enter");
  await until("the preview is gone", async () => ({ ok: await alice.getByTestId("attach-preview").isHidden(), got: "visible" }));
  await alice.getByTestId("attach-input").setInputFiles({ name: "산행.png", mimeType: "image/png", buffer: png(320, 200) });
  await alice.getByTestId("attach-preview-img").waitFor();
  await shot(alice, "photos-preview-desktop.png");
  await alice.getByTestId("composer").fill("정상에서 한 장");
  await alice.getByTestId("composer").press("Enter");
  const aliceMsg = alice.getByTestId("msg").filter({ has: body(alice, "정상에서 한 장") });
  await loaded(aliceMsg.getByTestId("attachment-thumb"));

  step("Bob sees the thumbnail and opens it full size with the keyboard");
  const bobMsg = bob.getByTestId("msg").filter({ has: body(bob, "정상에서 한 장") });
  await loaded(bobMsg.getByTestId("attachment-thumb"));
  await bobMsg.getByTestId("attachment-image").focus();
  await bob.keyboard.press("Enter");
  await loaded(bob.getByTestId("attachment-full"));
  const full = await bob.getByTestId("attachment-full").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  await check(full[0] === 320 && full[1] === 200, `the full-size photo is 320×200 (got ${full})`);
  await shot(bob, "photos-full-phone.png");
  await bob.keyboard.press("Escape");
  await until("the image dialog closes", async () => ({ ok: (await bob.getByTestId("image-dialog").count()) === 0, got: "open" }));

  step("Alice sends a file without a caption; Bob gets a download chip");
  await alice.getByTestId("attach-input").setInputFiles({ name: "회의록.txt", mimeType: "text/plain", buffer: Buffer.from("3월 정기 산행 회의록\n") });
  await expectText(alice.getByTestId("attach-preview"), "회의록.txt");
  await alice.getByTestId("send").click();
  const chip = bob.getByTestId("attachment-file").filter({ hasText: "회의록.txt" });
  await chip.waitFor();
  const [download] = await Promise.all([bob.waitForEvent("download"), chip.click()]);
  await check(download.suggestedFilename() === "회의록.txt", `the download keeps its name (got ${download.suggestedFilename()})`);
  await shot(bob, "photos-chat-phone.png");

  step("Alice deletes her photo by keyboard after a confirm; Bob sees it gone at once, and after a reload");
  await axe(alice, "chat with a photo (en, desktop)");
  await axe(bob, "chat with a photo (ko, phone)");
  await check(await bobMsg.getByTestId("delete-attachment").count() === 0, "Bob has no delete control on Alice's photo");
  // The message's actions show while something in it has the focus.
  await aliceMsg.getByTestId("attachment-image").focus();
  const del = aliceMsg.getByTestId("delete-attachment");
  await check((await del.getAttribute("aria-label") || "").includes("산행.png"), "the delete control names the file");
  await del.focus();
  await alice.keyboard.press("Enter");
  const dialog = alice.getByTestId("delete-attachment-dialog");
  await dialog.waitFor();
  await axe(alice, "delete the photo: confirm (en)");
  await dialog.getByTestId("confirm-ok").focus();
  await alice.keyboard.press("Enter");
  await expectText(aliceMsg.getByTestId("attachment-deleted"), "File deleted");
  await expectCount(aliceMsg.getByTestId("delete-attachment"), 0);
  // The attachment_deleted event reaches Bob's open room; the caption stays.
  await expectText(bobMsg.getByTestId("attachment-deleted"), "삭제된 파일");
  await expectCount(bobMsg.getByTestId("attachment-thumb"), 0);
  await shot(bob, "photos-deleted-phone.png");
  await axe(bob, "chat with a deleted photo (ko, phone)");
  // Opened again, Bob's browser asks before using its cached copy (410).
  await bob.reload();
  await expectText(bobMsg.getByTestId("attachment-deleted"), "삭제된 파일");

  step("Alice spends from the fund with a receipt photo; the ledger and the fee card link it");
  await alice.getByTestId("open-dues").click();
  await alice.getByTestId("open-fund").click();
  await alice.getByTestId("fund-balance").waitFor();
  await alice.getByTestId("policy-amount").fill("30000");
  await alice.getByTestId("policy-period").selectOption("monthly");
  await alice.getByTestId("policy-day").fill("25");
  await alice.getByTestId("save-policy").click();
  await alice.getByTestId("topup-amount").fill("50000");
  await alice.getByTestId("topup").click();
  await expectText(alice.getByTestId("wallet-balance"), "50,000");
  const tools = alice.locator("details:has([data-testid=admin-tools])");
  if (!(await tools.evaluate((d) => d.open))) await alice.getByTestId("admin-tools").click();
  const spend = alice.locator("form:has([data-testid=spend-submit])");
  await alice.getByTestId("pay-dues").click();
  await alice.getByTestId("pay-dialog").getByTestId("confirm-ok").click();
  // Alice types the spend's amount as her payment's answer and its fee
  // event reload the panel around the field: every digit lands.
  await spend.locator("input[type=number]").click();
  await alice.keyboard.type("12000", { delay: 150 });
  await expectText(alice.getByTestId("fund-balance"), "30,000");
  const typed = await spend.locator("input[type=number]").inputValue();
  await check(typed === "12000", `the spend's amount reads ${JSON.stringify(typed)} after reloads under typing, want "12000"`);
  await spend.locator("input[maxlength='200']").fill("간식 snacks");
  await alice.getByTestId("receipt-input").setInputFiles({ name: "receipt.png", mimeType: "image/png", buffer: png(120, 240) });
  await expectText(alice.getByTestId("receipt-state"), "receipt.png");
  // Alice presses Spend as Bob pays his dues on his phone: the payment's
  // fee event reloads her panel under the press, and her click still
  // counts (a panel rebuilt between press and release lost it).
  await pressOn(alice, alice.getByTestId("spend-submit"));
  const reloaded = alice.waitForResponse(async (r) => r.url().endsWith("/dues/status") &&
    (await r.json()).members.every((m) => m.state === "paid"));
  await bob.getByTestId("open-dues").click();
  await bob.getByTestId("topup-amount").fill("30000");
  await bob.getByTestId("topup").click();
  await expectText(bob.getByTestId("wallet-balance"), "30,000");
  await bob.getByTestId("pay-dues").click();
  await bob.getByTestId("pay-dialog").getByTestId("confirm-ok").click();
  await reloaded;
  // The panel's reload ends with that answer; a beat for it to show.
  await alice.waitForTimeout(100);
  await alice.mouse.up();
  await alice.getByTestId("confirm-ok").click();
  await expectText(alice.getByTestId("fund-balance"), "48,000");
  await bob.getByTestId("close-dues").click();
  await alice.getByTestId("ledger-receipt").first().click();
  await loaded(alice.getByTestId("attachment-full"));
  await shot(alice, "photos-receipt-desktop.png");
  await alice.keyboard.press("Escape");
  const card = bob.locator("[data-testid=fee-card][data-event=spend]");
  await loaded(card.getByTestId("attachment-thumb"));
  await shot(bob, "photos-fee-card-phone.png");

  await aliceCtx.close();
  await bobCtx.close();
}

// ackFirst routes the context's WebSocket so that the echo of a message
// sent with an attachment reaches the page only after its ack, as it may
// from a loaded server (the ack and the room's fan-out travel apart): the
// page must show the sender's photo from the ack alone.
async function ackFirst(ctx) {
  await ctx.routeWebSocket(/\/ws\?/, (ws) => {
    const server = ws.connectToServer();
    const withFile = new Set(); // cids of sends with an attachment
    const acked = new Set();
    const held = new Map(); // cid -> echo waiting for its ack
    ws.onMessage((m) => {
      const f = JSON.parse(m);
      if (f.type === "send" && f.attachment) withFile.add(f.cid);
      server.send(m);
    });
    server.onMessage((m) => {
      const f = JSON.parse(m);
      if (f.type === "msg" && withFile.has(f.cid) && !acked.has(f.cid)) {
        held.set(f.cid, m);
        return;
      }
      ws.send(m);
      if (f.type === "ack" && withFile.has(f.cid)) {
        acked.add(f.cid);
        if (held.has(f.cid)) ws.send(held.get(f.cid));
        held.delete(f.cid);
      }
    });
    ws.onClose(() => server.close());
    server.onClose(() => ws.close());
  });
}

// loaded waits until an <img> has decoded a picture.
async function loaded(img) {
  await img.waitFor();
  await until(`${img} shows a picture`, async () => {
    const w = await img.evaluate((el) => (el.complete ? el.naturalWidth : 0)).catch(() => 0);
    return { ok: w > 0, got: w };
  });
}

// png is a w×h RGB PNG with a gradient, built here so the flow needs no
// image files.
function png(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255) / w;
      raw[o + 1] = (y * 255) / h;
      raw[o + 2] = 120;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

// expectedError: the dues panel asks for the room's fund to learn whether
// there is one ("no fund yet" is 404 no_fund); a deleted photo answers
// 410 gone when Bob's reloaded page asks for it.
function expectedError(m) {
  const url = m.location().url;
  return (m.text().includes("status of 404") && /\/api\/rooms\/\d+\/fund$/.test(url)) ||
    (m.text().includes("status of 410") && /\/api\/attachments\/[0-9a-f]+(\/thumbnail)?$/.test(url));
}
