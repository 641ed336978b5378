// The shared half of Moim's browser flows (flow.mjs and the others in this
// folder): starting Debian's Chromium through Playwright, pages that record
// console errors, the steps every flow takes (sign up, log in, send), a
// WebSocket that a test can cut, screenshots and polling checks.
//
// A flow file calls runFlow(name, { expectedError }, async () => { ... })
// and is run as `node FILE BASE_URL OUT_DIR` (server/web_test.go starts a
// node and runs each flow). Screenshots and a summary go to OUT_DIR; the
// process exits non-zero on the first failed check or on any console error.
// MOIM_CHROMIUM overrides /usr/bin/chromium.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];
export const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: "en-US" };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "ko-KR" };
export const DELIVERY_MS = 1000; // the bound for seeing another person's message

export const tag = Math.random().toString(36).slice(2, 8);
export let base = "";
export let out = "";
export let browser = null;
export const timings = {};
const consoleErrors = [];
const violations = []; // what axe found, screen by screen
const expectedErrors = [];
const pages = {};
const shots = [];
const started = Date.now();
let isExpected = () => false;

// user makes a fresh account description (unique per run) for signup.
export function user(name, display) {
  return { username: `${name}_${tag}`, display, password: `password-${name}1` };
}

// step logs where the flow is, with the seconds since it started.
export function step(what) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

// runFlow parses BASE_URL and OUT_DIR, starts Chromium, runs the flow and
// exits with its verdict. expectedError(consoleMessage) names the refusals
// the flow provokes on purpose (Chromium logs every failed request).
export async function runFlow(file, { expectedError } = {}, run) {
  [base, out] = process.argv.slice(2);
  if (!base || !out) {
    console.error(`usage: node ${file} BASE_URL OUT_DIR`);
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  if (expectedError) isExpected = expectedError;
  browser = await chromium.launch({ executablePath: process.env.MOIM_CHROMIUM || "/usr/bin/chromium", headless: true, args: FLAGS });
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
  writeFileSync(join(out, "summary.json"), JSON.stringify({ failed, timings, consoleErrors, expectedErrors, violations, screenshots: shots }, null, 2));
  if (consoleErrors.length) {
    console.error("console errors:\n  " + consoleErrors.join("\n  "));
    failed = true;
  }
  if (violations.length) {
    console.error("axe found serious or critical violations:\n  " + violations.join("\n  "));
    failed = true;
  }
  console.log(`screenshots: ${shots.map((s) => join(out, s)).join(" ")}`);
  console.log(`delivery ms: ${JSON.stringify(timings)}`);
  process.exit(failed ? 1 : 0);
}

// axe runs axe-core on what the page shows now (its script evaluated in
// the page: the app's CSP admits no injected script tags) and notes any
// serious or critical violation; runFlow fails at the end with all of
// them, screen by screen.
export async function axe(page, screen) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  if (found.length) violations.push(`${screen}: ${found.join("; ")}`);
  step(`axe: ${screen}: ${found.length ? found.join("; ") : "clean"}`);
}

// open makes a page that records console errors and uncaught exceptions.
export async function open(ctx, name) {
  ctx.setDefaultTimeout(10000);
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const line = `${name}: ${m.text()} (${m.location().url})`;
    if (isExpected(m)) expectedErrors.push(line);
    else consoleErrors.push(line);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${name}: uncaught ${e.message}`));
  pages[name] = page;
  await page.goto(base + "/");
  return page;
}

export async function signup(page, u) {
  await page.getByTestId("auth-tab-signup").click();
  await page.getByTestId("auth-username").fill(u.username);
  await page.getByTestId("auth-display").fill(u.display);
  await page.getByTestId("auth-password").fill(u.password);
  await page.getByTestId("auth-submit").click();
  await expectText(page.getByTestId("me-name"), u.display);
}

// addContact adds u to the contacts of the user signed in on page.
export async function addContact(page, u) {
  await page.getByTestId("contacts").click();
  await page.getByTestId("contact-username").fill(u.username);
  await page.getByTestId("add-contact").click();
  await page.getByTestId("contact-list").getByText(u.display).waitFor();
  await page.keyboard.press("Escape");
}

// createRoom has the user on page create a room named name with
// members (user descriptions, each among the user's contacts) and waits
// until it is open.
export async function createRoom(page, name, ...members) {
  await page.getByTestId("new-room").click();
  await page.getByTestId("room-name").fill(name);
  for (const m of members) await page.getByTestId(`member-${m.username}`).check();
  await page.getByTestId("create-room").click();
  await expectText(page.getByTestId("chat-title"), name);
}

export async function login(page, u) {
  await page.getByTestId("auth-username").fill(u.username);
  await page.getByTestId("auth-password").fill(u.password);
  await page.getByTestId("auth-submit").click();
  await expectText(page.getByTestId("me-name"), u.display);
}

export async function userId(page) {
  return page.evaluate(async () => {
    const r = await fetch("/api/me", { headers: { Authorization: "Bearer " + localStorage.getItem("moim.token") } });
    return (await r.json()).id;
  });
}

// pressOn presses the mouse in the middle of what locator finds and
// holds it there; page.mouse.up() releases it. The flows use it to make a
// live update land between a press and its release.
export async function pressOn(page, locator) {
  await locator.scrollIntoViewIfNeeded();
  // The press must land on the element: a render still settling may move
  // it between measuring and pressing, and a press beside it counts for
  // nothing.
  for (let tries = 0; tries < 40; tries++) {
    const at = await locator.boundingBox();
    const x = at.x + at.width / 2, y = at.y + at.height / 2;
    await page.mouse.move(x, y);
    if (await locator.evaluate((el, [x, y]) => el.contains(document.elementFromPoint(x, y)), [x, y])) {
      await page.mouse.down();
      return;
    }
    await page.waitForTimeout(50);
  }
  throw new Error("pressOn: the element never stayed under the pointer");
}

export async function say(page, text) {
  await page.getByTestId("composer").fill(text);
  await page.getByTestId("composer").press("Enter");
}

// deliver sends text from one page and returns how long until the other
// shows it; more than DELIVERY_MS fails.
export async function deliver(from, to, text) {
  await say(from, text);
  const start = Date.now();
  await body(to, text).waitFor({ timeout: DELIVERY_MS });
  return Date.now() - start;
}

export function body(page, text) {
  const exact = new RegExp("^" + text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$");
  return page.getByTestId("msg-body").filter({ hasText: exact });
}

// cuttable routes the context's WebSocket through Playwright so the test
// can drop the connection (as a dead network would) and lose frames.
export async function cuttable(ctx) {
  let blocked = false;
  let live = null;
  let loseText = "";
  let lostCid = "";
  let onLost = () => {};
  let lostPromise = null;
  const sent = new Map(); // cid -> each send frame's resend mark, in order
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
      if (f.type === "send") sent.set(f.cid, [...(sent.get(f.cid) || []), f.resend === true]);
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
    sends: (cid) => (sent.get(cid) || []).length,
    // marks is each send frame's resend mark, in order.
    marks: (cid) => sent.get(cid) || [],
  };
}

export async function shot(page, name) {
  await page.locator("#toasts .toast").last().waitFor({ state: "detached", timeout: 4000 }).catch(() => {});
  await page.waitForTimeout(200); // let scrolling settle
  await page.screenshot({ path: join(out, name) });
  shots.push(name);
}

export async function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
}

export async function until(what, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return;
    if (Date.now() > end) throw new Error(`timed out: ${what} (last: ${JSON.stringify(last.got)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function expectText(locator, want, timeout) {
  await until(`${locator} has text ${want}`, async () => {
    const got = await locator.first().textContent({ timeout: 1000 }).catch(() => null);
    return { ok: got !== null && (want instanceof RegExp ? want.test(got) : got.includes(want)), got };
  }, timeout);
}

export async function expectCount(locator, n, timeout) {
  await until(`${locator} count ${n}`, async () => {
    const got = await locator.count();
    return { ok: got === n, got };
  }, timeout);
}

export async function expectAttr(locator, name, want, timeout) {
  await until(`${locator} ${name}=${want}`, async () => {
    const got = await locator.getAttribute(name, { timeout: 1000 }).catch(() => null);
    return { ok: got === want, got };
  }, timeout);
}
