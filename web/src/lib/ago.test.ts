import { describe, expect, it } from "vitest";
import { formatAgo, formatDuration, msUntilNextMinute } from "./ago";

const MIN = 60_000;

describe("formatAgo", () => {
  it("says just now within the first minute", () => {
    expect(formatAgo(1_000_000, 1_000_000)).toBe("just now");
    expect(formatAgo(1_000_000, 1_000_000 + 59_999)).toBe("just now");
  });

  it("counts whole minutes", () => {
    expect(formatAgo(0, MIN)).toBe("1 min ago");
    expect(formatAgo(0, 14 * MIN + 59_000)).toBe("14 min ago");
    expect(formatAgo(0, 119 * MIN)).toBe("119 min ago");
  });

  it("switches to hours, then days, for old data", () => {
    expect(formatAgo(0, 120 * MIN)).toBe("2 h ago");
    expect(formatAgo(0, 48 * 60 * MIN)).toBe("2 days ago");
  });

  it("treats a clock slightly behind the server's as just now", () => {
    expect(formatAgo(10 * MIN, 9 * MIN)).toBe("just now");
  });
});

describe("msUntilNextMinute", () => {
  it("wakes when the count changes, not on a fixed grid", () => {
    expect(msUntilNextMinute(0, 0)).toBe(MIN);
    expect(msUntilNextMinute(0, 59_000)).toBe(1_000);
    expect(msUntilNextMinute(0, 61_000)).toBe(59_000);
  });
});

describe("formatDuration", () => {
  it("reads as a person would say it", () => {
    expect(formatDuration(45_000)).toBe("45 s");
    expect(formatDuration(200_000)).toBe("3 min 20 s");
    expect(formatDuration(3_900_000)).toBe("1 h 5 min");
  });
});
