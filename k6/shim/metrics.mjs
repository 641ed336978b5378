// k6/metrics: custom metrics must be declared in the init context and only
// take samples in VU code, as in k6.
import { ctx, notInit, record, sample } from './context.mjs';

class Metric {
  constructor(type, name, isTime) {
    if (!ctx.init) throw new Error('metrics must be declared in the init context');
    if (!/^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/.test(name)) throw new Error(`invalid metric name "${name}"`);
    this.name = name;
    this.type = type;
    record({ k: 'metric', name, type, isTime: Boolean(isTime) });
  }

  add(value, tags) {
    notInit('adding to a metric');
    if (typeof value !== 'number' && typeof value !== 'boolean') {
      throw new Error(`${this.name}: a metric takes numbers or booleans, got ${typeof value}`);
    }
    sample(this.name, this.type, this.type === 'rate' ? (value ? 1 : 0) : value, tags);
    return true;
  }
}

export class Counter extends Metric {
  constructor(name) { super('counter', name); }
}

export class Gauge extends Metric {
  constructor(name, isTime) { super('gauge', name, isTime); }
}

export class Rate extends Metric {
  constructor(name) { super('rate', name); }
}

export class Trend extends Metric {
  constructor(name, isTime) { super('trend', name, isTime); }
}

export default { Counter, Gauge, Rate, Trend };
