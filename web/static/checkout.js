// Top-ups through a payment provider's own window (Toss Payments). A
// top-up the server answers "pending" carries what the provider's SDK
// needs; the SDK is loaded from the provider's origin only then (the
// page's Content-Security-Policy allows that origin only when the server
// uses that provider). The SDK sends the browser to the payment window and
// back to this page with the result in the query; finishCheckout then asks
// the server to confirm, which alone credits the wallet, or, when the
// checkout failed or was cancelled, tells the server so (the top-up ends
// at once rather than staying pending for an hour) and says why nothing
// was charged.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { errorText, won } from "./ui.js";

const sdks = new Map();

function loadSDK(url) {
  if (!sdks.has(url)) {
    sdks.set(url, new Promise((resolve, reject) => {
      const failed = () => {
        sdks.delete(url);
        reject(Object.assign(new Error(t("checkout.unavailable")), { code: "failed" }));
      };
      const s = document.createElement("script");
      s.src = url;
      s.onload = () => (typeof window.TossPayments === "function" ? resolve(window.TossPayments) : failed());
      s.onerror = failed;
      document.head.append(s);
    }));
  }
  return sdks.get(url);
}

// openCheckout opens the provider's payment window for a pending top-up
// made from room's dues panel; the browser comes back to finishCheckout.
export async function openCheckout(payment, room) {
  const c = payment.checkout;
  const TossPayments = await loadSDK(c.sdk_url);
  const back = (result) => `${location.origin}/?checkout=${result}&room=${room}`;
  let r;
  try {
    r = await TossPayments(c.client_key).payment({ customerKey: c.customer_key }).requestPayment({
      method: "CARD",
      amount: { currency: "KRW", value: c.amount },
      orderId: c.order_id,
      orderName: c.order_name,
      successUrl: back("success"),
      failUrl: back("fail"),
    });
  } catch (err) {
    // The window closed without a redirect (a desktop overlay). The
    // pending line and the server's expiry still cover a cancel that
    // does not get through.
    await api.cancelTopUp(c.order_id, err && err.code, err && err.message).catch(() => {});
    throw Object.assign(new Error(failure(err && err.code, err && err.message)), { code: "failed" });
  }
  // Some SDK modes answer in place instead of redirecting.
  if (r && r.paymentKey) await confirm(r.paymentKey, r.orderId, Number(r.amount && r.amount.value !== undefined ? r.amount.value : r.amount));
}

async function confirm(paymentKey, orderId, amount) {
  const p = await api.confirmTopUp(paymentKey, orderId, amount);
  if (p.status !== "confirmed") throw Object.assign(new Error(t("checkout.failed", p.failure || "")), { code: "failed" });
  return p;
}

function failure(code, message) {
  if (code === "PAY_PROCESS_CANCELED" || code === "USER_CANCEL") return t("checkout.canceled");
  return t("checkout.failed", message || code || "");
}

let result = null;

// finishCheckout handles the provider sending the browser back (the query
// names the outcome): it confirms a paid top-up with the server, then
// moves to the room's dues panel, where takeCheckoutResult shows how it
// went. It does nothing on an ordinary load.
export async function finishCheckout() {
  const q = new URLSearchParams(location.search);
  const outcome = q.get("checkout");
  if (!outcome) return;
  const room = /^\d+$/.test(q.get("room") || "") ? q.get("room") : "";
  history.replaceState(null, "", "/" + (room ? `#/room/${room}/dues` : ""));
  if (outcome !== "success") {
    result = { ok: false, text: failure(q.get("code"), q.get("message")) };
    if (!q.get("orderId")) return;
    try {
      await api.cancelTopUp(q.get("orderId"), q.get("code"), q.get("message"));
    } catch (err) {
      // The server found the order paid at the provider and credited it.
      if (err.code === "payment_confirmed") result = { ok: true, text: t("checkout.paidAfterAll") };
      // Otherwise the top-up stays pending: the wallet lists it with a
      // cancel button, and the server ends it within the hour anyway.
    }
    return;
  }
  try {
    const p = await confirm(q.get("paymentKey") || "", q.get("orderId") || "", Number(q.get("amount")));
    result = { ok: true, text: t("dues.deposited", won(p.amount)) };
  } catch (err) {
    result = { ok: false, text: err.code === "failed" ? err.message : errorText(err) };
  }
}

// takeCheckoutResult is the outcome of the checkout the browser just came
// back from, once; null when there was none.
export function takeCheckoutResult() {
  const r = result;
  result = null;
  return r;
}
