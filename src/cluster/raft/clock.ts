// Time for the Raft driver, injected: the real one is Node's timers and performance.now();
// the simulator (sim/) gives each node a virtual clock that may drift, so one seed replays
// a whole cluster and lease timing under clock drift is simulated, not argued.

/** An opaque timer handle (what setTimeout/setInterval returned). */
export interface TimerHandle {
  readonly __timerHandle?: never;
}

export interface Clock {
  /** Monotonic milliseconds (only differences mean anything). */
  nowMs(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** A repeating timer; the real one does not keep the process alive (unref). */
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
  /** Run `fn` after the current event-loop turn (setImmediate): I/O callbacks go first. */
  defer(fn: () => void): void;
}

export const realClock: Clock = {
  nowMs: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as TimerHandle,
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms).unref() as TimerHandle,
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  defer: (fn) => void setImmediate(fn),
};
