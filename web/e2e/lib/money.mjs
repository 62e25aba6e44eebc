// Exact money: a google.type.Money (units + nanos) and a decimal string as
// the console shows it both become whole nanos, so equal amounts compare
// equal however many trailing zeros either side writes.

export function moneyNanos({ units = '0', nanos = 0 }) {
  return BigInt(units) * 1_000_000_000n + BigInt(nanos);
}

export function decimalNanos(text) {
  const m = /^(-?)(\d+)(?:\.(\d{1,9}))?$/.exec(String(text).trim());
  if (!m) throw new Error(`not a decimal amount: ${JSON.stringify(text)}`);
  const nanos = BigInt(m[2]) * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -nanos : nanos;
}
