// Reconnect delays for the freshness stream: exponential with jitter, so a
// restarted api-service is not met by every open console at the same instant.

/** Settings of a Backoff; every field has a default. */
export interface BackoffOptions {
  /** The first delay's ceiling, in ms. */
  initialMs?: number;
  /** No delay exceeds this, in ms. */
  maxMs?: number;
  /** A number in [0, 1); injected by tests. */
  random?: () => number;
}

/**
 * "Equal jitter": the n-th delay is half of min(max, initial·2ⁿ) plus a
 * random part of the other half, so it never drops to zero (no hot loop)
 * and consoles spread out.
 */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call moves one step further. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    const half = ceiling / 2;
    return Math.round(half + this.random() * half);
  }

  /** After a healthy message: the next failure starts from the first step. */
  reset(): void {
    this.attempt = 0;
  }
}
