// Moim fees load test for k6: members of one club top up their wallets and
// pay dues into the room's fund (with idempotency keys, repeated once to
// check a retry is not charged twice) while reading the dues status, the
// fund and its ledger, JSON and CSV. See k6/README.md.
//
//   k6 run -e BASE_URL=http://localhost:8080 k6/fees.js
//
// Each stage is a constant arrival rate of member rounds (one round = 6 or 7
// requests, two of them money transfers). Every payment goes into the same
// fund, so this measures the hot-row case the benchmarks call "one hot fund".
import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8080').replace(/\/+$/, '');
const RATES = (__ENV.RATES || '10,50,100').split(',').map((r) => positiveInt('RATES', r.trim()));
const STAGE_DURATION = __ENV.STAGE_DURATION || '60s';
const MEMBERS = positiveInt('MEMBERS', __ENV.MEMBERS || '100');
const USER_PREFIX = __ENV.USER_PREFIX || 'k6fee';
const PASSWORD = __ENV.PASSWORD || 'k6-load-test';
const DUES = positiveInt('DUES', __ENV.DUES || '30000');
const CSV_EVERY = positiveInt('CSV_EVERY', __ENV.CSV_EVERY || '20');
const PRE_VUS = positiveInt('PRE_VUS', __ENV.PRE_VUS || '50');
const MAX_VUS = positiveInt('MAX_VUS', __ENV.MAX_VUS || '300');
const GAP = 5; // seconds between stages, and the time a stage's last rounds get to finish

const JSON_HEADERS = { 'Content-Type': 'application/json' };

export const options = {
  scenarios: scenarios(),
  thresholds: thresholds(),
  setupTimeout: __ENV.SETUP_TIMEOUT || '5m',
  batch: 50,
  batchPerHost: 50, // setup() signs up and logs in the members in parallel
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

function positiveInt(name, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: "${v}" is not a positive integer`);
  return n;
}

function stageName(i) {
  return `rate${i + 1}`;
}

// scenarios runs one constant-arrival-rate stage per entry of RATES (member
// rounds per second), one after the other. A stage holds its VUs for
// duration + gracefulStop, and k6 makes VUs up front for the most that
// stages hold at once: gracefulStop is the gap between stages, so one
// stage's VUs are free when the next starts and k6 makes PRE_VUS, not twice
// as many. Every stage carries phase:load, which setup() lacks.
function scenarios() {
  const out = {};
  const m = /^(\d+)s$/.exec(STAGE_DURATION);
  if (!m) throw new Error(`STAGE_DURATION: "${STAGE_DURATION}" is not whole seconds like 60s`);
  const secs = Number(m[1]);
  RATES.forEach((rate, i) => {
    out[stageName(i)] = {
      executor: 'constant-arrival-rate',
      exec: 'fees',
      rate,
      timeUnit: '1s',
      duration: STAGE_DURATION,
      preAllocatedVUs: Math.min(PRE_VUS, MAX_VUS),
      maxVUs: MAX_VUS,
      startTime: `${i * (secs + GAP)}s`,
      gracefulStop: `${GAP}s`,
      tags: { stage: `${rate}rps`, phase: 'load' },
    };
  });
  return out;
}

// thresholds: the seed's latency limits on every request of the rounds,
// tighter goals for payments, failures under 1 %, and every round started.
// The request limits take phase:load, the stages' tag: setup()'s sign-ups
// and logins (a bcrypt hash each) are not the load being measured.
function thresholds() {
  const t = {
    'http_req_failed{phase:load}': ['rate<0.01'],
    'http_req_duration{phase:load}': ['p(95)<1000', 'max<2000'],
    'http_req_duration{endpoint:pay}': ['p(95)<500'],
    'http_req_duration{endpoint:deposit}': ['p(95)<500'],
    'http_req_duration{endpoint:ledger_csv}': ['p(95)<2000'],
    checks: ['rate>0.99'],
    // A round that finds every VU (up to MAX_VUS) busy is dropped, not
    // queued: without this a server too slow for RATES would pass at the
    // lower rate it let through.
    dropped_iterations: ['count==0'],
  };
  RATES.forEach((_, i) => {
    t[`http_req_duration{scenario:${stageName(i)}}`] = ['p(95)<1000', 'max<2000'];
    t[`http_req_failed{scenario:${stageName(i)}}`] = ['rate<0.01'];
    t[`dropped_iterations{scenario:${stageName(i)}}`] = ['count==0'];
  });
  return t;
}

function params(token, name, endpoint, extra) {
  const headers = Object.assign({}, JSON_HEADERS);
  if (token) headers.Authorization = `Bearer ${token}`;
  return Object.assign({ headers, tags: { name, endpoint } }, extra || {});
}

function username(i) {
  return `${USER_PREFIX}${i}`;
}

// setup makes (or finds, on a second run with the same USER_PREFIX) MEMBERS
// users, a room owned by the first with the others as members, its fund and
// a monthly dues policy of DUES won. It returns every member's token: a few
// hundred tokens are small enough to copy into each VU.
export function setup() {
  const signups = http.batch(Array.from({ length: MEMBERS }, (_, i) => ['POST', `${BASE_URL}/api/auth/signup`,
    JSON.stringify({ username: username(i), password: PASSWORD, display_name: `k6 member ${i}` }),
    params(null, '/api/auth/signup', 'signup', { responseCallback: http.expectedStatuses(201, 409) })]));
  signups.forEach((res, i) => {
    if (res.status !== 201 && res.status !== 409) fail(`sign up ${username(i)}: ${res.status} ${res.body}`);
  });
  const users = http.batch(Array.from({ length: MEMBERS }, (_, i) => ['POST', `${BASE_URL}/api/auth/login`,
    JSON.stringify({ username: username(i), password: PASSWORD }), params(null, '/api/auth/login', 'login')]))
    .map((res, i) => {
      if (res.status !== 200) fail(`log in ${username(i)}: ${res.status} ${res.body}`);
      const body = res.json();
      return { id: body.user.id, token: body.token };
    });
  const owner = users[0].token;

  const name = `${USER_PREFIX}-club-${MEMBERS}`;
  const list = http.get(`${BASE_URL}/api/rooms`, params(owner, '/api/rooms', 'rooms'));
  if (list.status !== 200) fail(`list rooms: ${list.status} ${list.body}`);
  let room = (list.json().rooms.find((r) => r.name === name && r.role === 'owner') || {}).id;
  if (!room) {
    const res = http.post(`${BASE_URL}/api/rooms`, JSON.stringify({ name, member_ids: users.slice(1).map((u) => u.id) }),
      params(owner, '/api/rooms', 'rooms'));
    if (res.status !== 201) fail(`create room: ${res.status} ${res.body}`);
    room = res.json().id;
  }

  const fund = http.post(`${BASE_URL}/api/rooms/${room}/fund`, JSON.stringify({ currency: 'KRW' }),
    params(owner, '/api/rooms/{id}/fund', 'open_fund', { responseCallback: http.expectedStatuses(201, 409) }));
  if (fund.status !== 201 && !(fund.status === 409 && fund.json().error.code === 'fund_exists')) {
    fail(`open fund: ${fund.status} ${fund.body}`);
  }
  const dues = http.put(`${BASE_URL}/api/rooms/${room}/dues`, JSON.stringify({ amount: DUES, period: 'monthly', due_day: 25 }),
    params(owner, '/api/rooms/{id}/dues', 'set_dues'));
  if (dues.status !== 200) fail(`set dues: ${dues.status} ${dues.body}`);
  console.log(`setup: room ${room} with ${MEMBERS} members, fund open, dues ${DUES} won a month`);
  // The run id keeps idempotency keys unique across runs.
  return { room, users, runId: __ENV.RUN_ID || Date.now().toString(36) };
}

// fees is one member's round: top up, pay the dues, retry the payment with
// the same key, then read the status, the fund and the ledger.
export function fees(data) {
  const iter = exec.scenario.iterationInTest;
  const u = data.users[iter % data.users.length];
  const key = `${data.runId}-${exec.scenario.name}-${iter}`;
  const room = `${BASE_URL}/api/rooms/${data.room}`;

  // Money enters only through a payment provider; load runs use the
  // sandbox (MOIM_PAYMENTS=sandbox), which confirms at once.
  const dep = http.post(`${BASE_URL}/api/wallet/topups`, JSON.stringify({ amount: DUES, idempotency_key: `dep-${key}` }),
    params(u.token, '/api/wallet/topups', 'deposit'));
  check(dep, { 'sandbox top-up 201': (r) => r.status === 201 && r.json().status === 'confirmed' });

  const payBody = JSON.stringify({ amount: DUES, idempotency_key: `pay-${key}` });
  const pay = http.post(`${room}/fund/pay`, payBody, params(u.token, '/api/rooms/{id}/fund/pay', 'pay'));
  const paid = check(pay, {
    'pay 201': (r) => r.status === 201,
    'pay is dues of the amount': (r) => r.status === 201 && r.json().kind === 'dues' && r.json().amount === DUES,
  });
  // A client that timed out retries with the same key: same transfer, no
  // second charge.
  const again = http.post(`${room}/fund/pay`, payBody, params(u.token, '/api/rooms/{id}/fund/pay', 'pay_retry'));
  check(again, { 'retried pay 200, same transfer': (r) => r.status === 200 && paid && r.json().id === pay.json().id });

  const status = http.get(`${room}/dues/status`, params(u.token, '/api/rooms/{id}/dues/status', 'dues_status'));
  check(status, {
    'dues status lists the payer as paid': (r) => r.status === 200 &&
      r.json().members.some((m) => m.user_id === u.id && m.paid >= DUES),
  });

  const fund = http.get(room + '/fund', params(u.token, '/api/rooms/{id}/fund', 'fund'));
  check(fund, { 'fund holds the payment': (r) => r.status === 200 && r.json().balance >= DUES });

  const ledger = http.get(`${room}/fund/ledger?limit=20`, params(u.token, '/api/rooms/{id}/fund/ledger', 'ledger'));
  check(ledger, { 'ledger page': (r) => r.status === 200 && Array.isArray(r.json().entries) && r.json().entries.length > 0 });

  if (iter % CSV_EVERY === 0) {
    const csv = http.get(`${room}/fund/ledger?format=csv`, params(u.token, '/api/rooms/{id}/fund/ledger', 'ledger_csv'));
    check(csv, {
      'ledger csv': (r) => r.status === 200 && String(r.headers['Content-Type']).startsWith('text/csv') &&
        r.body.includes('time,kind,member,amount,balance_after,period,memo'),
    });
  }
}
