// k6: check, fail, group and sleep.
import { notInit, record, sample } from './context.mjs';

export function check(value, sets, tags) {
  notInit('using check()');
  let all = true;
  for (const [name, cond] of Object.entries(sets)) {
    const ok = Boolean(typeof cond === 'function' ? cond(value) : cond);
    sample('checks', 'rate', ok ? 1 : 0, { check: name, ...(tags || {}) });
    record({ k: 'check', name, ok });
    all = all && ok;
  }
  return all;
}

export function fail(message) {
  throw new Error(message);
}

export function group(_name, fn) {
  return fn();
}

/** sleep blocks the VU like k6's does: no timers or socket events run meanwhile. */
export function sleep(secs) {
  notInit('using sleep()');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(secs) * 1000);
}

export default { check, fail, group, sleep };
