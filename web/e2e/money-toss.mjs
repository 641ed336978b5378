// Top-ups through Toss Payments' checkout in Moim's web client. The node
// runs with MOIM_PAYMENTS=toss; Toss cannot be reached from this machine
// (no internet), so server/web_money_test.go serves a local stand-in: a
// small JS file in place of Toss's SDK that keeps its documented
// requestPayment redirect contract (the browser leaves for Toss's payment
// window and comes back to successUrl with paymentKey, orderId and amount,
// or to failUrl with code, message and orderId), that payment window with
// pay and cancel buttons, and Toss's confirm API the server calls.
//
//   node money-toss.mjs BASE_URL OUT_DIR
//
// Alice, on a desktop, tops up 30,000 won: checkout, back, confirmed, in
// her wallet. Bob, on a phone in Korean, cancels his checkout: he is told
// so, nothing reaches his wallet, and the server ended the top-up at once
// (nothing pending). He then leaves a second checkout without finishing
// it: his wallet lists it pending, and he cancels it from there. Any console error fails the flow,
// so a Content-Security-Policy that blocked the SDK would too.
import {
  DESKTOP, PHONE, addContact, axe, base, browser, check, createRoom, expectCount, expectText, open, runFlow,
  shot, signup, step, user,
} from "./kit.mjs";

const users = {
  alice: user("alice", "앨리스 Alice"),
  bob: user("bob", "밥 Bob"),
};

await runFlow("money-toss.mjs", { expectedError }, run);

// A room without a fund answers 404 no_fund, which the dues panel shows as
// "no fund yet".
function expectedError(m) {
  return m.text().includes("status of 404") && /\/api\/rooms\/\d+\/fund$/.test(m.location().url);
}

async function run() {
  step("sign up: Alice on a desktop, Bob on a phone in Korean; Alice makes a room with Bob");
  const alice = await open(await browser.newContext(DESKTOP), "alice");
  await signup(alice, users.alice);
  const bob = await open(await browser.newContext(PHONE), "bob");
  await signup(bob, users.bob);
  await addContact(bob, users.alice);
  await addContact(alice, users.bob);
  await createRoom(alice, "등산 모임 Hiking", users.bob);
  const roomId = /#\/room\/(\d+)/.exec(alice.url())[1];

  step("Alice tops up 30,000 through Toss's checkout");
  await alice.getByTestId("open-dues").click();
  await expectText(alice.getByTestId("wallet-balance"), "0");
  // Toss pays nothing out through Moim: the wallet says so instead of a form.
  await alice.getByTestId("withdraw-unavailable").waitFor();
  await check(await alice.getByTestId("withdraw-form").count() === 0, "no withdrawal form with Toss");
  await alice.getByTestId("topup-amount").fill("30000");
  await alice.getByTestId("topup").click();
  await alice.getByTestId("toss-window").waitFor();
  await expectText(alice.getByTestId("toss-amount"), "30000");
  await shot(alice, "toss-checkout-desktop.png");
  await alice.getByTestId("toss-pay").click();
  await expectText(alice.getByTestId("checkout-result"), "30,000");
  await expectText(alice.getByTestId("wallet-balance"), "30,000");
  await check(!alice.url().includes("paymentKey"), "the payment's query is gone from the address bar");
  await alice.getByTestId("checkout-result").scrollIntoViewIfNeeded();
  await shot(alice, "toss-confirmed-desktop.png");

  step("Bob opens the room's dues on his phone and cancels his checkout");
  // Being added to a room sends nothing until its first message: Bob
  // opens the app again to see it.
  await bob.reload();
  const room = bob.getByTestId("room-item").filter({ hasText: "등산 모임" });
  await room.waitFor();
  await room.click();
  await bob.getByTestId("open-dues").click();
  await bob.getByTestId("topup-amount").fill("20000");
  await bob.getByTestId("topup").click();
  await bob.getByTestId("toss-window").waitFor();
  await shot(bob, "toss-checkout-phone.png");
  await bob.getByTestId("toss-cancel").click();
  await expectText(bob.getByTestId("checkout-result"), "취소");
  await expectText(bob.getByTestId("wallet-balance"), "0");
  // The cancel reached the server: the top-up ended at once, nothing pending.
  let wallet = await walletOf(bob);
  await check(wallet.balance === 0 && wallet.held === 0, `nothing credited after the cancel: ${JSON.stringify(wallet)}`);
  await check(wallet.pending_topups.length === 0, `the cancelled top-up is not pending: ${JSON.stringify(wallet.pending_topups)}`);
  await expectCount(bob.getByTestId("pending-topup"), 0);
  await shot(bob, "toss-cancelled-phone.png");

  step("Bob leaves a payment window without paying or cancelling: the wallet lists it pending, and he cancels it there");
  await bob.getByTestId("topup-amount").fill("15000");
  await bob.getByTestId("topup").click();
  await bob.getByTestId("toss-window").waitFor();
  // He opens Moim again instead of finishing at Toss.
  await bob.goto(new URL(`/#/room/${roomId}/dues`, base).href);
  const line = bob.getByTestId("pending-topup");
  await expectText(line, "15,000");
  await axe(bob, "dues panel with a pending top-up (ko, phone)");
  await shot(bob, "toss-pending-phone.png");
  await line.getByTestId("cancel-topup").click();
  await bob.getByTestId("cancel-topup-dialog").getByTestId("confirm-ok").click();
  await expectCount(bob.getByTestId("pending-topup"), 0);
  wallet = await walletOf(bob);
  await check(wallet.balance === 0 && wallet.pending_topups.length === 0, `the abandoned top-up ended, nothing credited: ${JSON.stringify(wallet)}`);
}

// walletOf reads the page's user's wallet through the API.
function walletOf(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/wallet", { headers: { Authorization: "Bearer " + localStorage.getItem("moim.token") } });
    return r.json();
  });
}
