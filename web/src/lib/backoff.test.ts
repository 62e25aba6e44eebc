import { describe, expect, it } from "vitest";
import { Backoff } from "./backoff";

describe("Backoff", () => {
  it("doubles from 0.5 s up to the 30 s cap", () => {
    const highest = new Backoff({ random: () => 0.999999 });
    const ceilings = Array.from({ length: 9 }, () => highest.next());
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("never waits less than half the step, so a failing server is not hammered", () => {
    const lowest = new Backoff({ random: () => 0 });
    expect(Array.from({ length: 8 }, () => lowest.next())).toEqual([250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
  });

  it("spreads delays with the random part", () => {
    const values = [0.5, 0.25];
    const backoff = new Backoff({ random: () => values.shift() ?? 0 });
    expect(backoff.next()).toBe(375); // 250 + 0.5·250
    expect(backoff.next()).toBe(625); // 500 + 0.25·500
  });

  it("starts over after a healthy message", () => {
    const backoff = new Backoff({ random: () => 0 });
    backoff.next();
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(250);
  });

  it("does not overflow after many failures", () => {
    const backoff = new Backoff({ random: () => 0.999999 });
    for (let i = 0; i < 1000; i++) backoff.next();
    expect(backoff.next()).toBe(30000);
  });
});
