import { describe, expect, it } from "vitest";
import { formatMoney, moneyToDecimal, nanosToDecimal, parseDecimal, shareOf, toNanos } from "./money";

describe("moneyToDecimal", () => {
  it("joins units and nanos without losing a digit", () => {
    expect(moneyToDecimal({ units: 331498n, nanos: 930_000_000 })).toBe("331498.93");
    expect(moneyToDecimal({ units: 12n, nanos: 0 })).toBe("12");
    expect(moneyToDecimal({ units: 0n, nanos: 1 })).toBe("0.000000001");
    expect(moneyToDecimal({ units: 101n, nanos: 490_277_778 })).toBe("101.490277778");
  });

  it("keeps amounts beyond a double's precision exact", () => {
    // 2^53 + 1 units cannot be held by a double.
    expect(moneyToDecimal({ units: 9_007_199_254_740_993n, nanos: 10_000_000 })).toBe("9007199254740993.01");
  });

  it("reads negative amounts the way google.type.Money signs them", () => {
    expect(moneyToDecimal({ units: -1n, nanos: -750_000_000 })).toBe("-1.75");
    expect(moneyToDecimal({ units: 0n, nanos: -500_000_000 })).toBe("-0.5");
    expect(moneyToDecimal({ units: 0n, nanos: 0 })).toBe("0");
  });

  it("adds exactly where floats would not", () => {
    const sum = toNanos({ units: 0n, nanos: 100_000_000 }) + toNanos({ units: 0n, nanos: 200_000_000 });
    expect(nanosToDecimal(sum)).toBe("0.3");
    expect(0.1 + 0.2).not.toBe(0.3);
  });
});

describe("parseDecimal", () => {
  it("accepts plain non-negative decimals", () => {
    expect(parseDecimal("500")).toEqual({ units: 500n, nanos: 0 });
    expect(parseDecimal("500.25")).toEqual({ units: 500n, nanos: 250_000_000 });
    expect(parseDecimal(" 0.000000001 ")).toEqual({ units: 0n, nanos: 1 });
  });

  it("refuses what is not one", () => {
    for (const bad of ["", "-5", "1e3", "5.", ".5", "abc", "1.0000000001", "1,000", "Infinity"]) {
      expect(parseDecimal(bad), bad).toBeUndefined();
    }
  });
});

describe("formatMoney", () => {
  it("formats the exact string in its currency", () => {
    expect(formatMoney("331498.93", "USD", "en-US")).toBe("$331,498.93");
    expect(formatMoney("1234.5", "EUR", "de-DE")).toBe("1.234,50\u00a0€");
  });

  it("does not round a large amount through a double", () => {
    expect(formatMoney("9007199254740993.01", "USD", "en-US")).toBe("$9,007,199,254,740,993.01");
  });

  it("shows an unknown code beside the number", () => {
    expect(formatMoney("5", "XY1", "en-US")).toBe("5.00 XY1");
  });
});

describe("shareOf", () => {
  it("gives bar lengths relative to the largest", () => {
    expect(shareOf(50n, 100n)).toBe(0.5);
    expect(shareOf(100n, 100n)).toBe(1);
    expect(shareOf(0n, 100n)).toBe(0);
    expect(shareOf(5n, 0n)).toBe(0);
  });
});
