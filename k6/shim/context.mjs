// The state of one shim VU (a worker thread): who it is, where it logs, and
// the synchronous bridge to the runner's HTTP client.
import { appendFileSync } from 'node:fs';
import { MessageChannel, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';

/** ctx.init is true while the script's module code (k6's init context) runs. */
export const ctx = { init: true, ...workerData };

// As in k6, an iteration's samples carry its scenario's name and tags, and
// setup()'s and teardown()'s only their group: they belong to no scenario,
// so a threshold filtered by a scenario's tags leaves them out.
const baseTags = workerData.scenario
  ? { scenario: workerData.scenario.name, group: '', ...(workerData.tags || {}) }
  : { group: `::${workerData.role}` };

/** record appends one entry to this VU's log, which the runner reads at the end. */
export function record(entry) {
  appendFileSync(workerData.log, JSON.stringify(entry) + '\n');
}

/** sample records one metric sample with the VU's scenario tags. */
export function sample(metric, type, value, tags) {
  record({ k: 'sample', metric, type, value: Number(value), tags: { ...baseTags, ...(tags || {}) } });
}

/** notInit throws what k6 throws when VU-only APIs are used at module level. */
export function notInit(what) {
  if (ctx.init) throw new Error(`${what} in the init context is not supported`);
}

/**
 * call runs msg on the runner's thread and blocks until it answers, the way
 * k6's http functions block the VU: the worker posts the request with a
 * private port and sleeps on a shared flag the runner raises once the reply
 * is on the port.
 */
export function call(msg) {
  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  parentPort.postMessage({ ...msg, port: port2, flag }, [port2]);
  Atomics.wait(flag, 0, 0);
  const reply = receiveMessageOnPort(port1);
  port1.close();
  if (!reply) throw new Error('k6 shim: the runner did not answer');
  return reply.message;
}
