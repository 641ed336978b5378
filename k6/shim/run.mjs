// run.mjs runs a k6 script under node with the stand-in modules in this
// directory, for CI where k6 cannot be installed:
//
//   node k6/shim/run.mjs k6/chat.js     (env: the script's __ENV, plus K6SHIM_*)
//
// Like k6 it reads the options, works out how many VUs the scenarios
// reserve (k6 initialises them all before setup()), runs setup() once, runs
// each scenario's VUs from their startTime counted from the end of setup()
// (each VU a worker thread with its own copy of the script, each iteration
// lasting until its sockets and timers are done), runs teardown(), then
// evaluates the thresholds. It is a functional stand-in, not a load
// generator: per-vu-iterations and shared-iterations run as configured;
// constant-arrival-rate starts iterations on k6's schedule and drops (and
// counts in dropped_iterations) those that find every VU busy; every other
// executor runs K6SHIM_VUS VUs doing K6SHIM_ITERATIONS iterations each,
// unpaced.
//
// It prints a short summary and, when K6SHIM_SUMMARY names a file, writes
// everything there as JSON: metrics, thresholds, checks, the VU reservation,
// every WebSocket frame and HTTP request the script sent, the tag sets of
// every metric, and script exceptions. Exit code, as k6's: 0 when the run
// ended, even if iterations threw (k6 logs those and goes on; the summary
// lists them); 99 when a threshold failed; 107 when the options, setup() or
// teardown() threw, or a threshold names no metric; 2 on a usage error.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = dirname(fileURLToPath(import.meta.url));

// Metrics k6 defines itself; a threshold may name them without a script
// declaring them.
const BUILTIN = {
  checks: 'rate', http_reqs: 'counter', http_req_duration: 'trend', http_req_failed: 'rate',
  http_req_blocked: 'trend', http_req_connecting: 'trend', http_req_sending: 'trend', http_req_waiting: 'trend',
  http_req_receiving: 'trend', http_req_tls_handshaking: 'trend', iterations: 'counter', iteration_duration: 'trend',
  dropped_iterations: 'counter', vus: 'gauge', vus_max: 'gauge', data_sent: 'counter', data_received: 'counter',
  ws_sessions: 'counter', ws_msgs_sent: 'counter', ws_msgs_received: 'counter', ws_connecting: 'trend',
  ws_session_duration: 'trend', ws_ping: 'trend',
};

function duration(v, def) {
  if (v === undefined || v === null) return def;
  if (typeof v === 'number') return v;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let ms = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) ms += Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
  return ms;
}

async function fetchOne(r) {
  const t0 = performance.now();
  try {
    const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body, redirect: 'follow',
      signal: AbortSignal.timeout(r.timeout) });
    const body = await res.text();
    return { status: res.status, body, headers: Object.fromEntries(res.headers), duration: performance.now() - t0 };
  } catch (e) {
    return { status: 0, body: '', headers: {}, error: String((e.cause && e.cause.message) || e.message),
      duration: performance.now() - t0 };
  }
}

class Run {
  constructor(script) {
    this.dir = mkdtempSync(join(tmpdir(), 'k6shim-'));
    // The script imports "k6/…": give it a node_modules/k6 that is this
    // directory, and a package.json that makes its .js an ES module.
    writeFileSync(join(this.dir, 'package.json'), '{"type":"module"}\n');
    mkdirSync(join(this.dir, 'node_modules'));
    symlinkSync(here, join(this.dir, 'node_modules', 'k6'), 'dir');
    const copy = join(this.dir, basename(script).replace(/\.m?js$/, '') + '.js');
    cpSync(script, copy);
    this.script = pathToFileURL(copy).href;
    this.logs = join(this.dir, 'logs');
    mkdirSync(this.logs);
    this.seq = 0;
    this.interrupted = [];
    this.crashes = [];
    this.testStart = Date.now();
    this.own = []; // samples of the runner itself (dropped_iterations)
  }

  // worker runs one shim VU and resolves when it ends, terminating it after
  // limitMs (an iteration k6 would interrupt).
  worker(role, extra, limitMs) {
    const log = join(this.logs, `${String(++this.seq).padStart(6, '0')}.jsonl`);
    const w = new Worker(join(here, 'vu.mjs'), {
      workerData: { ...extra, role, script: this.script, env: { ...process.env, ...(extra.env || {}) }, log,
        testStart: this.testStart },
    });
    w.on('message', (m) => {
      if (m.kind !== 'http') return;
      Promise.all(m.reqs.map(fetchOne)).then((replies) => {
        m.port.postMessage(replies);
        m.port.close();
        Atomics.store(m.flag, 0, 1);
        Atomics.notify(m.flag, 0);
      });
    });
    w.on('error', (e) => this.crashes.push({ role, where: role, message: String((e && e.stack) || e) }));
    return new Promise((done) => {
      const timer = limitMs ? setTimeout(() => {
        this.interrupted.push(`${extra.scenario ? extra.scenario.name : role} VU ${extra.vu || 0}`);
        w.terminate();
      }, limitMs) : null;
      w.on('exit', () => {
        clearTimeout(timer);
        done(log);
      });
    });
  }

  entries(log) {
    let text;
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }

  // iteration runs iteration number `iteration` of a scenario on VU vu,
  // interrupting it at deadline (the scenario's end plus its gracefulStop).
  iteration(s, scenario, data, vu, vuIteration, iteration, deadline) {
    return this.worker('iteration', {
      exec: s.exec || 'default', data, vu, vuIteration, tags: s.tags || {}, env: s.env,
      scenario: { ...scenario, iteration },
    }, Math.max(1, deadline - Date.now()));
  }

  async scenario(name, s, data) {
    const startTime = duration(s.startTime, 0);
    await new Promise((r) => setTimeout(r, Math.max(0, this.testStart + startTime - Date.now())));
    const graceful = duration(s.gracefulStop, 30000);
    if (s.executor === 'constant-arrival-rate') return this.arrivalRate(name, s, data, graceful);
    let vus;
    let perVU;
    let length;
    switch (s.executor) {
      case 'per-vu-iterations':
        vus = s.vus || 1;
        perVU = () => s.iterations || 1;
        length = duration(s.maxDuration, 600000);
        break;
      case 'shared-iterations': {
        vus = s.vus || 1;
        const total = s.iterations || 1;
        perVU = (v) => Math.floor(total / vus) + (v < total % vus ? 1 : 0);
        length = duration(s.maxDuration, 600000);
        break;
      }
      default:
        vus = Number(process.env.K6SHIM_VUS || 2);
        perVU = () => Number(process.env.K6SHIM_ITERATIONS || 2);
        length = duration(s.duration, 0) + (s.stages || []).reduce((a, st) => a + duration(st.duration, 0), 0) + 60000;
    }
    const scenario = { name, executor: s.executor, startTime: Date.now(), length };
    const deadline = scenario.startTime + length + graceful;
    let iteration = 0;
    const runs = [];
    for (let v = 0; v < vus; v++) {
      const count = perVU(v);
      const first = iteration;
      iteration += count;
      runs.push((async () => {
        for (let i = 0; i < count; i++) await this.iteration(s, scenario, data, v + 1, i, first + i, deadline);
      })());
    }
    await Promise.all(runs);
    return undefined;
  }

  // arrivalRate is k6's constant-arrival-rate: iteration i starts at
  // i × timeUnit / rate for as long as duration lasts, on a free VU. With
  // none free the iteration is dropped (a dropped_iterations sample with
  // the scenario's tags), and a VU is added for later ones while fewer than
  // maxVUs exist: the run does not catch up, so rate × duration is started
  // plus dropped.
  async arrivalRate(name, s, data, graceful) {
    const period = duration(s.timeUnit, 1000) / s.rate;
    const length = duration(s.duration, 0);
    const scenario = { name, executor: s.executor, startTime: Date.now(), length };
    const deadline = scenario.startTime + length + graceful;
    const maxVUs = s.maxVUs || s.preAllocatedVUs;
    let vus = s.preAllocatedVUs;
    const free = Array.from({ length: vus }, (_, v) => ({ id: v + 1, iterations: 0 }));
    const runs = [];
    for (let i = 0; i * period < length; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, scenario.startTime + i * period - Date.now())));
      const vu = free.pop();
      if (!vu) {
        this.own.push({ k: 'sample', metric: 'dropped_iterations', type: 'counter', value: 1,
          tags: { scenario: name, group: '', ...(s.tags || {}) } });
        if (vus < maxVUs) free.push({ id: ++vus, iterations: 0 });
        continue;
      }
      runs.push(this.iteration(s, scenario, data, vu.id, vu.iterations++, i, deadline).then(() => free.push(vu)));
    }
    await Promise.all(runs);
  }

  async main() {
    const optLog = await this.worker('options', {});
    const found = this.entries(optLog).find((e) => e.k === 'options');
    if (!found) return this.finish({});
    const { options, exports } = found;
    const scenarios = options.scenarios || { default: { executor: 'per-vu-iterations', vus: options.vus || 1,
      iterations: options.iterations || 1 } };
    this.exports = exports;
    this.reservation = reservation(scenarios);

    const setupLog = await this.worker('setup', {}, duration(options.setupTimeout, 60000));
    const setup = this.entries(setupLog).find((e) => e.k === 'setup');
    if (setup) {
      this.testStart = Date.now(); // scenario startTimes count from after setup, as in k6
      await Promise.all(Object.entries(scenarios).map(([name, s]) => this.scenario(name, s, setup.data)));
      await this.worker('teardown', { data: setup.data }, duration(options.teardownTimeout, 60000));
    }
    return this.finish(options);
  }

  finish(options) {
    const all = readdirSync(this.logs).sort().flatMap((f) => this.entries(join(this.logs, f))).concat(this.own);
    const declared = { ...BUILTIN };
    const problems = [];
    for (const e of all.filter((x) => x.k === 'metric')) {
      if (declared[e.name] && declared[e.name] !== e.type && !BUILTIN[e.name]) {
        problems.push(`metric ${e.name} declared as both ${declared[e.name]} and ${e.type}`);
      }
      declared[e.name] = BUILTIN[e.name] || e.type;
    }
    const samples = all.filter((x) => x.k === 'sample');
    const metrics = {};
    for (const name of new Set(samples.map((x) => x.metric))) {
      metrics[name] = aggregate(declared[name], samples.filter((x) => x.metric === name));
    }
    const thresholds = {};
    for (const [key, list] of Object.entries(options.thresholds || {})) {
      const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key);
      const name = m[1].trim();
      if (!declared[name]) {
        problems.push(`threshold on "${key}": no metric "${name}" (declare it in the init context)`);
        continue;
      }
      const want = (m[2] || '').split(',').filter(Boolean).map((kv) => kv.split(':').map((x) => x.trim()));
      const picked = samples.filter((x) => x.metric === name && want.every(([k, v]) => String(x.tags[k]) === v));
      const agg = aggregate(declared[name], picked);
      thresholds[key] = [].concat(list).map((t) => ({
        ...evaluate(typeof t === 'string' ? t : t.threshold, agg, declared[name]), samples: picked.length }));
      for (const r of thresholds[key].filter((x) => x.error)) problems.push(`threshold "${key}: ${r.expr}": ${r.error}`);
    }
    const checks = {};
    for (const c of all.filter((x) => x.k === 'check')) {
      checks[c.name] = checks[c.name] || { passes: 0, fails: 0 };
      checks[c.name][c.ok ? 'passes' : 'fails']++;
    }
    const exceptions = all.filter((x) => x.k === 'exception').concat(this.crashes);
    const summary = {
      metrics, thresholds, checks, problems, exceptions, interrupted: this.interrupted,
      exports: this.exports || [], reservation: this.reservation || null, series: series(samples),
      ws_sent: all.filter((x) => x.k === 'ws_send').map((x) => ({ url: x.url, data: x.data })),
      http: all.filter((x) => x.k === 'http').map((x) => ({ method: x.method, url: x.url, status: x.status,
        scenario: x.scenario })),
    };
    for (const agg of Object.values(metrics)) delete agg.sorted;
    if (process.env.K6SHIM_SUMMARY) writeFileSync(process.env.K6SHIM_SUMMARY, JSON.stringify(summary, null, 1));
    rmSync(this.dir, { recursive: true, force: true });
    return report(summary);
  }
}

// series lists each metric's distinct tag sets: the time series k6 would
// keep (and an output would write) for it.
function series(samples) {
  const out = {};
  for (const x of samples) {
    out[x.metric] = out[x.metric] || new Map();
    const key = JSON.stringify(Object.entries(x.tags).sort());
    if (!out[x.metric].has(key)) out[x.metric].set(key, x.tags);
  }
  return Object.fromEntries(Object.entries(out).map(([m, sets]) => [m, [...sets.values()]]));
}

// reservation is how many VUs k6 initialises for these scenarios (its
// ScenarioConfigs.GetFullExecutionRequirements): each scenario holds its
// VUs from its startTime to the end of its duration or maxDuration plus
// gracefulStop, so scenarios whose spans overlap add up. planned VUs are
// all made before setup() runs; possible adds what arrival-rate scenarios
// may make on the way (maxVUs − preAllocatedVUs). Scenarios are taken in
// k6's order (startTime, then name), so one ending exactly when another
// starts does not count twice.
function reservation(scenarios) {
  const steps = [];
  const sorted = Object.entries(scenarios).sort(([an, a], [bn, b]) =>
    duration(a.startTime, 0) - duration(b.startTime, 0) || an.localeCompare(bn));
  for (const [id, [name, s]] of sorted.entries()) {
    const start = duration(s.startTime, 0);
    let planned;
    let unplanned = 0;
    let length;
    switch (s.executor) {
      case 'per-vu-iterations':
      case 'shared-iterations':
        planned = s.vus || 1;
        length = duration(s.maxDuration, 600000);
        break;
      case 'constant-vus':
        planned = s.vus || 1;
        length = duration(s.duration, 0);
        break;
      case 'constant-arrival-rate':
        planned = s.preAllocatedVUs;
        unplanned = (s.maxVUs || planned) - planned;
        length = duration(s.duration, 0);
        break;
      default:
        return { error: `scenario ${name}: the shim does not know what executor ${s.executor} reserves` };
    }
    steps.push({ at: start, id, planned, unplanned },
      { at: start + length + duration(s.gracefulStop, 30000), id, planned: 0, unplanned: 0 });
  }
  steps.sort((a, b) => a.at - b.at || a.id - b.id);
  const now = new Map();
  let planned = 0;
  let possible = 0;
  for (const step of steps) {
    now.set(step.id, step);
    const vus = [...now.values()].reduce((a, x) => a + x.planned, 0);
    planned = Math.max(planned, vus);
    possible = Math.max(possible, vus + [...now.values()].reduce((a, x) => a + x.unplanned, 0));
  }
  return { planned, possible };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

function aggregate(type, list) {
  const values = list.map((x) => x.value);
  switch (type) {
    case 'counter':
      return { count: values.reduce((a, v) => a + v, 0) };
    case 'rate':
      return { rate: values.length ? values.reduce((a, v) => a + v, 0) / values.length : 0,
        passes: values.filter((v) => v).length, fails: values.filter((v) => !v).length };
    case 'gauge':
      return { value: values.length ? values[values.length - 1] : 0, min: Math.min(...values), max: Math.max(...values) };
    default: {
      const sorted = values.slice().sort((a, b) => a - b);
      return { count: sorted.length, avg: sorted.length ? sorted.reduce((a, v) => a + v, 0) / sorted.length : 0,
        min: sorted[0] || 0, med: percentile(sorted, 50), max: sorted[sorted.length - 1] || 0,
        'p(90)': percentile(sorted, 90), 'p(95)': percentile(sorted, 95), 'p(99)': percentile(sorted, 99), sorted };
    }
  }
}

const ALLOWED = { counter: ['count', 'rate'], rate: ['rate'], gauge: ['value'], trend: ['avg', 'min', 'med', 'max', 'p'] };

function evaluate(expr, agg, type) {
  const m = /^\s*(avg|min|max|med|count|rate|value|p\((\d+(?:\.\d+)?)\))\s*(<=|>=|<|>|===|==|!=)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
  if (!m) return { expr, ok: false, error: 'not a threshold expression k6 accepts' };
  const method = m[2] ? 'p' : m[1];
  if (!ALLOWED[type].includes(method)) return { expr, ok: false, error: `${m[1]} does not apply to a ${type}` };
  const value = m[2] ? percentile(agg.sorted, Number(m[2])) : agg[method] ?? 0;
  const bound = Number(m[4]);
  const ok = { '<': value < bound, '<=': value <= bound, '>': value > bound, '>=': value >= bound,
    '==': value === bound, '===': value === bound, '!=': value !== bound }[m[3]];
  return { expr, value, ok };
}

function report(summary) {
  const out = [];
  for (const [name, agg] of Object.entries(summary.metrics).sort()) {
    out.push(`  ${name}: ${Object.entries(agg).map(([k, v]) => `${k}=${Math.round(v * 1000) / 1000}`).join(' ')}`);
  }
  let failed = false;
  for (const [key, results] of Object.entries(summary.thresholds)) {
    for (const r of results) {
      failed = failed || !r.ok;
      out.push(`  ${r.ok ? 'ok  ' : 'FAIL'} ${key} ${r.expr}${r.error ? ` (${r.error})` : ` (${Math.round(r.value * 1000) / 1000})`}`);
    }
  }
  for (const [name, c] of Object.entries(summary.checks)) out.push(`  check "${name}": ${c.passes} passed, ${c.fails} failed`);
  const r = summary.reservation;
  if (r) out.push(r.error ? `  VUs reserved: unknown (${r.error})` : `  VUs reserved: ${r.planned} (up to ${r.possible})`);
  for (const p of summary.problems) out.push(`  problem: ${p}`);
  for (const e of summary.exceptions) out.push(`  exception in ${e.where}: ${e.message}`);
  for (const i of summary.interrupted) out.push(`  interrupted: ${i}`);
  console.log(out.join('\n'));
  // k6 logs an exception in an iteration and goes on; one in the options,
  // setup() or teardown() (or a bad threshold) ends the run with 107.
  if (summary.problems.length || summary.exceptions.some((e) => e.role !== 'iteration')) return 107;
  return failed ? 99 : 0;
}

const script = process.argv[2];
if (!script) {
  console.error('usage: node run.mjs SCRIPT.js');
  process.exit(2);
}
process.exitCode = await new Run(resolve(script)).main();
