// Moim chat load test for k6: the seed's staged spike tests (users 100 → 1000
// → 5000, messages per second 100 → 1000 → 5000) over the real-time
// protocol in docs/PROTOCOL.md. See k6/README.md for how to run it.
//
//   k6 run -e BASE_URL=http://localhost:8080 k6/chat.js
//
// setup() signs the users up over REST and puts them in rooms of ROOM_SIZE;
// each VU is one user holding one WebSocket for one stage. Every message
// carries its send time, so each recipient measures end-to-end latency.
//
// Needs k6 v1.6 or later, where k6/websockets is stable. Older k6 (v0.50–v1.5)
// has the same API as k6/experimental/websockets: change the import below.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8080').replace(/\/+$/, '');
const WS_URL = __ENV.WS_URL || BASE_URL.replace(/^http/, 'ws') + '/ws';
const STAGES = parseStages(__ENV.STAGES || '100:100,1000:1000,5000:5000');
const ROOM_SIZE = positiveInt('ROOM_SIZE', __ENV.ROOM_SIZE || '10');
const CONNECT_TIME = seconds('CONNECT_TIME', __ENV.CONNECT_TIME || '20s');
const STAGE_DURATION = seconds('STAGE_DURATION', __ENV.STAGE_DURATION || '60s');
const DRAIN = seconds('DRAIN', __ENV.DRAIN || '10s');
const PAUSE = seconds('PAUSE', __ENV.PAUSE || '5s');
const PING_EVERY = seconds('PING_EVERY', __ENV.PING_EVERY || '25s');
const READY_TIMEOUT = seconds('READY_TIMEOUT', __ENV.READY_TIMEOUT || '10s');
// START_AT (a time such as 2026-12-02T06:00:00Z) lines up several k6
// processes: k6 starts the stages when setup() returns, and setup() returns
// at START_AT.
const START_AT = __ENV.START_AT ? Date.parse(__ENV.START_AT) : null;
if (Number.isNaN(START_AT)) throw new Error(`START_AT: "${__ENV.START_AT}" is not a time like 2026-12-02T06:00:00Z`);
const USER_PREFIX = __ENV.USER_PREFIX || 'k6chat';
const PASSWORD = __ENV.PASSWORD || 'k6-load-test';
const BODY_SIZE = positiveInt('BODY_SIZE', __ENV.BODY_SIZE || '64');
// The server's per-connection send limit (MOIM_SEND_RATE, default 20/s): a
// stage asking more of one user would measure rate_limited errors, not load.
const SEND_LIMIT = Number(__ENV.SEND_LIMIT || 20);
// SETUP_ONLY=1 creates the users and rooms and sends nothing: run it once
// before starting several k6 processes on one test (k6/README.md).
const SETUP_ONLY = __ENV.SETUP_ONLY === '1' || __ENV.SETUP_ONLY === 'true';
const BATCH = 50; // requests per http.batch in setup(), all in parallel

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const WS_OPEN = 1; // readyState of an open socket: k6's WebSocket has no OPEN constant

// Every sent message shows up in these, so a run reads like the seed's
// tables: sent, acked, deliveries expected and received, latency, errors.
const e2eLatency = new Trend('chat_e2e_latency', true);
const ackLatency = new Trend('chat_ack_latency', true);
const errors = new Rate('chat_errors');
const sent = new Counter('chat_sent');
const acked = new Counter('chat_acked');
const received = new Counter('chat_received');
const expected = new Counter('chat_deliveries_expected');
const duplicates = new Counter('chat_duplicates');
const gaps = new Counter('chat_gaps');
const skipped = new Counter('chat_sends_skipped');
const late = new Counter('chat_late_connections');

export const options = {
  scenarios: scenarios(),
  thresholds: thresholds(),
  setupTimeout: __ENV.SETUP_TIMEOUT || '10m',
  batch: BATCH,
  batchPerHost: BATCH, // k6's default of 6 would make setup() crawl
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

function parseStages(spec) {
  return spec.split(',').map((part) => {
    const m = /^\s*(\d+):(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new Error(`STAGES: "${part}" is not users:messages-per-second`);
    return { users: Number(m[1]), rate: Number(m[2]) };
  });
}

function positiveInt(name, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: "${v}" is not a positive integer`);
  return n;
}

// seconds reads "90", "90s", "1m30s" or "500ms".
function seconds(name, v) {
  const s = String(v).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let used = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
    used += m[0].length;
  }
  if (used === 0 || used !== s.length) throw new Error(`${name}: "${v}" is not a duration like 60s or 1m30s`);
  return total;
}

function stageName(i) {
  return `stage${i + 1}`;
}

// scenarios runs each stage as its own scenario, one after the other: every
// VU runs one iteration that lasts the whole stage (connect, send, drain).
// A scenario holds its VUs until maxDuration + gracefulStop, and k6 makes
// VUs up front for the most that scenarios hold at once: each stage ends
// exactly where the next starts, so k6 makes as many VUs as the largest
// stage has users, not the sum of two. The pause is when VUs close.
function scenarios() {
  if (SETUP_ONLY) {
    return { setup_only: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'setupOnly' } };
  }
  if (PAUSE < 1) throw new Error(`PAUSE: ${PAUSE}s is too short for the VUs to close their sockets; use at least 1s`);
  const out = {};
  let start = 0;
  STAGES.forEach((s, i) => {
    if (s.users % ROOM_SIZE !== 0) {
      throw new Error(`STAGES: ${s.users} users do not fill rooms of ${ROOM_SIZE}; use a multiple`);
    }
    if (s.rate / s.users > SEND_LIMIT) {
      throw new Error(`STAGES: ${s.rate} msg/s over ${s.users} users is ${s.rate / s.users}/s per connection, ` +
        `above the server's send limit ${SEND_LIMIT}/s (MOIM_SEND_RATE; set SEND_LIMIT if you raised it)`);
    }
    const length = CONNECT_TIME + STAGE_DURATION + DRAIN;
    out[stageName(i)] = {
      executor: 'per-vu-iterations',
      exec: 'chat',
      vus: s.users,
      iterations: 1,
      startTime: `${start}s`,
      maxDuration: `${length + PAUSE}s`,
      gracefulStop: '0s',
      tags: { stage: `${s.users}u-${s.rate}mps` },
    };
    start += length + PAUSE;
  });
  return out;
}

// thresholds are the seed's limits, overall and per stage: 95 % of
// deliveries within 1 s, none over 2 s, under 1 % errors.
function thresholds() {
  if (SETUP_ONLY) return {};
  const t = {
    chat_e2e_latency: ['p(95)<1000', 'max<2000'],
    chat_errors: ['rate<0.01'],
    chat_acked: ['count>0'], // a run that sent nothing must not pass
    checks: ['rate>0.99'],
  };
  STAGES.forEach((_, i) => {
    t[`chat_e2e_latency{scenario:${stageName(i)}}`] = ['p(95)<1000', 'max<2000'];
    t[`chat_errors{scenario:${stageName(i)}}`] = ['rate<0.01'];
  });
  return t;
}

function username(i) {
  return `${USER_PREFIX}${i}`;
}

function roomName(g) {
  return `${USER_PREFIX}-s${ROOM_SIZE}-r${g}`;
}

// batched sends requests BATCH at a time and returns every response.
function batched(requests) {
  const out = [];
  for (let i = 0; i < requests.length; i += BATCH) {
    out.push(...http.batch(requests.slice(i, i + BATCH)));
  }
  return out;
}

function post(path, body, name, params) {
  return ['POST', `${BASE_URL}${path}`, JSON.stringify(body),
    Object.assign({ headers: JSON_HEADERS, tags: { name } }, params || {})];
}

function authed(token, name) {
  return { headers: Object.assign({ Authorization: `Bearer ${token}` }, JSON_HEADERS), tags: { name } };
}

function login(i) {
  return post('/api/auth/login', { username: username(i), password: PASSWORD }, '/api/auth/login');
}

// setup creates (or, on a second run with the same USER_PREFIX, finds) the
// users and rooms of the largest stage. User i is in room floor(i /
// ROOM_SIZE); smaller stages use the first users, so their rooms are full.
// It returns only room ids: each VU logs in itself, because setup's data is
// copied into every VU and 5000 tokens in 5000 VUs would cost gigabytes.
export function setup() {
  const users = Math.max(...STAGES.map((s) => s.users));
  const groups = Math.ceil(users / ROOM_SIZE);
  const ids = new Array(users);

  const signups = batched(Array.from({ length: users }, (_, i) => post('/api/auth/signup',
    { username: username(i), password: PASSWORD, display_name: `k6 user ${i}` }, '/api/auth/signup',
    { responseCallback: http.expectedStatuses(201, 409) })));
  const relogin = [];
  signups.forEach((res, i) => {
    if (res.status === 201) ids[i] = res.json().id;
    else if (res.status === 409) relogin.push(i); // made by an earlier run: log in to learn the id
    else fail(`sign up ${username(i)}: ${res.status} ${res.body}`);
  });

  const owners = Array.from({ length: groups }, (_, g) => g * ROOM_SIZE);
  const toLogin = [...new Set([...owners, ...relogin])];
  const tokens = {};
  batched(toLogin.map(login)).forEach((res, k) => {
    const i = toLogin[k];
    if (res.status !== 200) fail(`log in ${username(i)}: ${res.status} ${res.body}`);
    const body = res.json();
    ids[i] = body.user.id;
    tokens[i] = body.token;
  });

  const lists = batched(owners.map((i) => ['GET', `${BASE_URL}/api/rooms`, null, authed(tokens[i], '/api/rooms')]));
  const rooms = new Array(groups);
  const create = [];
  lists.forEach((res, g) => {
    if (res.status !== 200) fail(`list rooms of ${username(owners[g])}: ${res.status} ${res.body}`);
    const found = res.json().rooms.find((r) => r.name === roomName(g) && r.role === 'owner');
    if (found) {
      rooms[g] = found.id;
      check(found, { 'existing room has every member': (r) => r.member_count === ROOM_SIZE });
    } else {
      create.push(g);
    }
  });
  batched(create.map((g) => {
    const members = ids.slice(g * ROOM_SIZE + 1, (g + 1) * ROOM_SIZE);
    return ['POST', `${BASE_URL}/api/rooms`, JSON.stringify({ name: roomName(g), member_ids: members }),
      authed(tokens[owners[g]], '/api/rooms')];
  })).forEach((res, k) => {
    const g = create[k];
    if (res.status !== 201) fail(`create ${roomName(g)}: ${res.status} ${res.body}`);
    rooms[g] = res.json().id;
  });
  console.log(`setup: ${users} users (${relogin.length} existed), ${groups} rooms of ${ROOM_SIZE} (${create.length} new)`);
  if (START_AT !== null && !SETUP_ONLY) {
    const wait = START_AT - Date.now();
    // A process that starts late would send late: its recipients would miss
    // the others' first messages and its latencies would not compare.
    if (wait < 0) fail(`START_AT ${__ENV.START_AT} passed ${-wait} ms before setup() ended: choose a later time`);
    sleep(wait / 1000);
  }
  // The run id keeps cids unique across runs: the server dedupes a cid per
  // (user, room) for 24 hours.
  return { rooms, runId: __ENV.RUN_ID || Date.now().toString(36) };
}

export function setupOnly() {}

// chat is one user for one stage: log in, connect, send at the stage's
// per-user rate during the send window, count what arrives, then close.
export function chat(data) {
  const name = exec.scenario.name;
  const stage = STAGES[Number(name.slice('stage'.length)) - 1];
  // iterationInTest is unique across k6 processes sharing a test through
  // execution segments, so each user is driven by exactly one VU.
  const user = exec.scenario.iterationInTest;
  if (user >= stage.users) return;
  const room = data.rooms[Math.floor(user / ROOM_SIZE)];

  const started = exec.scenario.startTime;
  const sendFrom = started + CONNECT_TIME * 1000;
  const sendUntil = sendFrom + STAGE_DURATION * 1000;
  const closeAt = sendUntil + DRAIN * 1000;
  const interval = 1000 * stage.users / stage.rate;
  const phase = Math.random() * interval; // spread users over the interval
  const slots = Math.ceil((sendUntil - sendFrom - phase) / interval);
  const pad = BODY_SIZE > 40 ? ' ' + 'x'.repeat(BODY_SIZE - 40) : '';

  const res = http.post(`${BASE_URL}/api/auth/login`, JSON.stringify({ username: username(user), password: PASSWORD }),
    { headers: JSON_HEADERS, tags: { name: '/api/auth/login' } });
  if (!check(res, { 'login 200': (r) => r.status === 200 })) {
    errors.add(true, { code: 'login' });
    skipped.add(slots); // this user's share of the target, never sent
    return;
  }
  const me = res.json();

  const pending = new Map(); // cid -> send time, until acked
  let n = 0;
  let lastSeq = 0;
  let sendTimer = null;
  let pingTimer = null;
  let closeTimer = null;
  let readyTimer = null;
  let pingOut = false;
  let closing = false; // we are closing on schedule: what follows is not an error
  let failed = false; // an error was counted for this connection already

  // The token goes in a header: k6 tags every WebSocket metric with the
  // URL (url and name), so a ?token= would make a time series per user and
  // write every token into --out files. The name tag keeps both plain.
  const ws = new WebSocket(WS_URL, null, { headers: { Authorization: `Bearer ${me.token}` }, tags: { name: WS_URL } });

  function frame(f) {
    ws.send(JSON.stringify(f));
  }

  // skipRest counts the slots this user will not send (no connection, or
  // it ended early) as skipped, so sent + skipped is always the target.
  function skipRest() {
    if (n < slots) skipped.add(slots - n);
    n = slots;
  }

  // A connection that never gets "ready" would send nothing and record
  // nothing: after READY_TIMEOUT (or at the stage's close, if sooner) it
  // counts as an error and its slots as skipped. A socket still connecting
  // is closed once it opens: k6 cannot close it before.
  readyTimer = setTimeout(() => {
    errors.add(true, { code: 'no_ready' });
    failed = true;
    closing = true;
    skipRest();
    clearInterval(pingTimer); // send on a closing socket throws
    if (ws.readyState === WS_OPEN) ws.close();
  }, Math.min(READY_TIMEOUT * 1000, Math.max(0, closeAt - Date.now())));

  // sendNext sends slot n at sendFrom + phase + n·interval, for the slots
  // that fall in the send window. Slots a busy k6 machine missed by more
  // than one interval are skipped and counted (catching up would burst past
  // the server's send limit), so sent + skipped is always the target.
  function sendNext() {
    const now = Date.now();
    const late = Math.floor((now - (sendFrom + phase + n * interval)) / interval);
    if (late >= 1) {
      const skip = Math.min(late, slots - n);
      skipped.add(skip);
      n += skip;
    }
    if (n >= slots) return;
    const due = sendFrom + phase + n * interval;
    if (due > now) {
      sendTimer = setTimeout(sendNext, due - now);
      return;
    }
    const cid = `${data.runId}-${name}-${n}`;
    pending.set(cid, now);
    frame({ type: 'send', room, cid, body: `k6 ${now} ${cid}${pad}` });
    sent.add(1);
    n++;
    sendTimer = setTimeout(sendNext, Math.max(0, sendFrom + phase + n * interval - Date.now()));
  }

  // onFrame handles one server frame; now is when k6 read it (the message
  // event's timestamp), so a busy VU's event loop does not add to latency.
  function onFrame(ev, now) {
    switch (ev.type) {
      case 'ready':
        clearTimeout(readyTimer);
        if (ev.user !== me.user.id) errors.add(true, { code: 'bad_frame' });
        // Others may have sent already: what this user missed meanwhile is
        // the generator's fault, not the server's (see chat_received).
        if (now > sendFrom) late.add(1);
        sendNext();
        break;
      case 'ack': {
        const at = pending.get(ev.cid);
        if (at === undefined || ev.room !== room || !Number.isInteger(ev.seq)) {
          errors.add(true, { code: 'bad_frame' });
          break;
        }
        pending.delete(ev.cid);
        ackLatency.add(now - at);
        acked.add(1);
        errors.add(false);
        expected.add(ROOM_SIZE); // every member of the room is online in this stage
        break;
      }
      case 'msg': {
        if (ev.kind !== 'text' || typeof ev.body !== 'string') break; // fee and system notices
        const m = /^k6 (\d+) /.exec(ev.body);
        if (!m) break; // someone else's message
        if (ev.room !== room || !Number.isInteger(ev.seq)) {
          errors.add(true, { code: 'bad_frame' });
          break;
        }
        if (ev.seq <= lastSeq) {
          duplicates.add(1);
          break;
        }
        if (lastSeq > 0 && ev.seq > lastSeq + 1) gaps.add(ev.seq - lastSeq - 1);
        lastSeq = ev.seq;
        received.add(1);
        e2eLatency.add(now - Number(m[1]));
        break;
      }
      case 'pong':
        pingOut = false;
        break;
      case 'error':
        errors.add(true, { code: String(ev.code) });
        if (ev.cid) pending.delete(ev.cid);
        break;
      default: // presence, read, typing, synced, deleted: not part of this load
    }
  }

  ws.onmessage = (e) => {
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch (_) {
      errors.add(true, { code: 'bad_frame' });
      return;
    }
    onFrame(ev, e.timestamp);
  };

  ws.onopen = () => {
    if (closing) {
      ws.close(); // the ready timeout passed while connecting
      return;
    }
    // The server pings every 30 s and k6 answers by itself; the protocol's
    // own ping checks the other direction: a pong must come back before the
    // next ping.
    pingTimer = setInterval(() => {
      if (pingOut) errors.add(true, { code: 'no_pong' });
      pingOut = true;
      frame({ type: 'ping' });
    }, PING_EVERY * 1000);
    closeTimer = setTimeout(() => {
      closing = true;
      clearTimeout(sendTimer);
      clearInterval(pingTimer); // send on a closing socket throws
      for (let k = 0; k < pending.size; k++) errors.add(true, { code: 'no_ack' });
      pending.clear();
      skipRest(); // slots whose timer had not fired yet
      ws.close();
    }, Math.max(0, closeAt - Date.now()));
  };

  ws.onerror = (e) => {
    if (closing || failed) return;
    failed = true;
    errors.add(true, { code: 'ws_error' });
    console.warn(`${username(user)}: websocket error: ${e.error}`);
  };

  ws.onclose = (e) => {
    // A reset fires no error event in k6, only this close, without a code.
    if (!closing && !failed) errors.add(true, { code: `closed_${e.code || 'none'}` });
    skipRest();
    clearTimeout(sendTimer);
    clearTimeout(closeTimer);
    clearTimeout(readyTimer);
    clearInterval(pingTimer);
  };
}
