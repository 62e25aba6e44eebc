// "Last refreshed N min ago", recomputed locally every minute: no request
// is needed to keep it true.

/** How long ago `thenMs` was, at `nowMs`, in the banner's words. */
export function formatAgo(thenMs: number, nowMs: number): string {
  const minutes = Math.floor(Math.max(0, nowMs - thenMs) / 60_000);
  if (minutes < 1) return "just now";
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** Milliseconds until the minute count shown by formatAgo changes. */
export function msUntilNextMinute(thenMs: number, nowMs: number): number {
  const elapsed = Math.max(0, nowMs - thenMs);
  return 60_000 - (elapsed % 60_000);
}

/** A duration in words: "45 s", "3 min 20 s", "1 h 5 min". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
