// k6/timers: node's timers have the same contract (the iteration lasts until
// they are cleared).
export const { setTimeout, clearTimeout, setInterval, clearInterval } = globalThis;
export default { setTimeout, clearTimeout, setInterval, clearInterval };
