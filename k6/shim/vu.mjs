// One shim VU: a worker thread that loads the script (its init context),
// then runs one role: read the options, run setup() or teardown(), or run
// one iteration of a scenario's function. The worker ends when the
// iteration's event loop is empty, as a k6 iteration does.
import { workerData } from 'node:worker_threads';
import { ctx, record } from './context.mjs';

globalThis.__ENV = workerData.env;
globalThis.__VU = workerData.vu || 0;
globalThis.__ITER = workerData.vuIteration || 0;

async function main() {
  const mod = await import(workerData.script);
  ctx.init = false;
  const data = workerData.data === undefined ? undefined : JSON.parse(workerData.data);
  switch (workerData.role) {
    case 'options':
      record({ k: 'options', options: mod.options || {}, exports: Object.keys(mod) });
      return;
    case 'setup':
      record({ k: 'setup', data: typeof mod.setup === 'function' ? JSON.stringify((await mod.setup()) ?? null) : 'null' });
      return;
    case 'teardown':
      if (typeof mod.teardown === 'function') await mod.teardown(data);
      return;
    default: {
      const fn = mod[workerData.exec];
      if (typeof fn !== 'function') throw new Error(`the script exports no function "${workerData.exec}"`);
      await fn(data);
    }
  }
}

main().catch((e) => {
  record({ k: 'exception', role: workerData.role, where: workerData.role === 'iteration' ? workerData.exec : workerData.role,
    message: String((e && e.stack) || e) });
});
