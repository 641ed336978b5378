// k6/execution: the identity the runner gave this VU.
import { ctx } from './context.mjs';

function inVU(what) {
  if (ctx.init || !ctx.scenario) throw new Error(`getting ${what} information outside of the VU context is not supported`);
}

export default {
  get scenario() {
    inVU('scenario');
    const s = ctx.scenario;
    return {
      name: s.name,
      executor: s.executor,
      startTime: s.startTime,
      progress: Math.min(1, (Date.now() - s.startTime) / s.length),
      iterationInInstance: s.iteration,
      iterationInTest: s.iteration,
    };
  },
  get vu() {
    inVU('VU');
    return {
      idInInstance: ctx.vu,
      idInTest: ctx.vu,
      iterationInInstance: ctx.vuIteration,
      iterationInScenario: ctx.vuIteration,
      tags: { ...(ctx.tags || {}) },
    };
  },
  get instance() {
    return { currentTestRunDuration: Date.now() - ctx.testStart };
  },
  test: {
    abort(reason) {
      throw new Error(`test aborted: ${reason || ''}`);
    },
  },
};
