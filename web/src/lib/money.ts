// Money arrives as google.type.Money: whole units (int64, a bigint here) and
// nanos. Every figure stays an exact decimal string or a bigint count of
// nanos; a float never holds an amount, so totals shown match the server's
// to the last digit. Intl.NumberFormat is used only to display a string.

const NANOS_PER_UNIT = 1_000_000_000n;

/** The parts of a google.type.Money this module reads. */
export interface MoneyLike {
  currencyCode: string;
  units: bigint;
  nanos: number;
}

/** The amount in nanos: exact, whatever its size. */
export function toNanos(m: Pick<MoneyLike, "units" | "nanos">): bigint {
  return m.units * NANOS_PER_UNIT + BigInt(m.nanos);
}

/** An exact decimal string of a count of nanos, without trailing zeros: 331498.93, -0.75, 12. */
export function nanosToDecimal(nanos: bigint): string {
  const negative = nanos < 0n;
  const abs = negative ? -nanos : nanos;
  const whole = abs / NANOS_PER_UNIT;
  const fraction = (abs % NANOS_PER_UNIT).toString().padStart(9, "0").replace(/0+$/, "");
  const text = fraction ? `${whole}.${fraction}` : `${whole}`;
  return negative && abs !== 0n ? `-${text}` : text;
}

/** The exact decimal string of a Money (units + nanos). */
export function moneyToDecimal(m: Pick<MoneyLike, "units" | "nanos">): string {
  return nanosToDecimal(toNanos(m));
}

const DECIMAL = /^(\d{1,18})(?:\.(\d{1,9}))?$/;

/**
 * A non-negative decimal typed by a person ("500", "12.5") as units and
 * nanos; undefined when it is not one (signs, exponents, more than nine
 * decimals, or too large for int64 units).
 */
export function parseDecimal(text: string): { units: bigint; nanos: number } | undefined {
  const match = DECIMAL.exec(text.trim());
  if (!match) return undefined;
  const units = BigInt(match[1]);
  const nanos = Number((match[2] ?? "").padEnd(9, "0"));
  return { units, nanos };
}

/** A bar's length as a fraction 0..1 of the largest, computed on integers. */
export function shareOf(value: bigint, largest: bigint): number {
  if (largest <= 0n || value <= 0n) return 0;
  // Four significant digits are more than a bar in pixels can show.
  return Number((value * 10_000n) / largest) / 10_000;
}

const formatters = new Map<string, Intl.NumberFormat>();

/**
 * A decimal string formatted for display in its currency. The string is
 * passed to Intl as it is (Intl reads decimal strings exactly), so a
 * large amount is not rounded through a double first.
 */
export function formatMoney(decimal: string, currency: string, locale?: string): string {
  const key = `${locale ?? ""}|${currency}`;
  let formatter = formatters.get(key);
  if (!formatter) {
    try {
      formatter = new Intl.NumberFormat(locale, { style: "currency", currency });
    } catch {
      // Not an ISO 4217 code Intl knows: show the number and the code.
      formatter = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      const plain = formatter;
      return `${plain.format(decimal as Intl.StringNumericLiteral)} ${currency}`;
    }
    formatters.set(key, formatter);
  }
  return formatter.format(decimal as Intl.StringNumericLiteral);
}
