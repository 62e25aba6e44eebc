// The one long-lived request the console keeps open: WatchFreshness. It
// reconnects with backoff and since_version after any failure, and bumps
// the data epoch when a run finishes so the pages reload what they show.

import { Code, ConnectError } from "@connectrpc/connect";
import type { Freshness } from "./gen/cudly/recommendations/v1/recommendations_pb";
import { recommendations, reportIfUnauthenticated } from "./api";
import { Backoff } from "./lib/backoff";
import { finishedRunKey, type Connection } from "./lib/freshnessView";
import { Store } from "./store";

export interface FreshnessState {
  connection: Connection;
  freshness?: Freshness;
  /** Why the stream is not live, when it is not. */
  lastError?: string;
}

export const freshnessState = new Store<FreshnessState>({ connection: "connecting" });

/**
 * Whether anything was ever collected or run: "unknown" until the first
 * snapshot. ListRecommendations on a database that never collected starts a
 * cold-start run by itself, so the pages ask nothing before this is "yes".
 */
export const collectedOnce = new Store<"unknown" | "never" | "yes">("unknown");

/** Grows by one each time a run finishes: pages reload their data when it does. */
export const dataEpoch = new Store(0);

/**
 * With no message for this long the connection is taken as dropped (the
 * server re-sends its snapshot every 15 s by default).
 */
const SILENCE_LIMIT_MS = 50_000;

let started = false;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Starts watching (once per page). The loop runs until the page goes away. */
export function startWatchingFreshness(stop: AbortSignal = new AbortController().signal): void {
  if (started) return;
  started = true;
  void watch(stop);
}

async function watch(stop: AbortSignal): Promise<void> {
  const backoff = new Backoff();
  let lastVersion = 0n;
  let lastRunKey: string | undefined;
  let seenAny = false;

  while (!stop.aborted) {
    const attempt = new AbortController();
    const abortAttempt = () => attempt.abort();
    stop.addEventListener("abort", abortAttempt);
    let silence: ReturnType<typeof setTimeout> | undefined;
    const armSilence = () => {
      clearTimeout(silence);
      silence = setTimeout(() => attempt.abort(), SILENCE_LIMIT_MS);
    };
    const markLive = () => {
      freshnessState.update((s) => (s.connection === "live" ? s : { ...s, connection: "live", lastError: undefined }));
    };
    try {
      armSilence();
      const stream = recommendations.watchFreshness(
        { sinceVersion: lastVersion },
        {
          signal: attempt.signal,
          // The server answers with its headers at once; when since_version is
          // current, the next message may be a heartbeat away, yet the stream
          // is healthy from here.
          onHeader: () => {
            if (seenAny) markLive();
          },
        },
      );
      for await (const message of stream) {
        armSilence();
        backoff.reset();
        seenAny = true;
        if (message.version >= lastVersion) lastVersion = message.version;
        freshnessState.set({ connection: "live", freshness: message });
        collectedOnce.set(message.lastCollectedAt || message.collection ? "yes" : "never");
        const runKey = finishedRunKey(message);
        if (runKey !== undefined) {
          if (lastRunKey !== undefined && runKey !== lastRunKey) dataEpoch.update((n) => n + 1);
          lastRunKey = runKey;
        } else if (message.collecting && lastRunKey === undefined) {
          // A run in flight on first sight: its end must reload the data.
          lastRunKey = "";
        }
      }
      // The server ended the stream without an error: reconnect as well.
    } catch (error) {
      if (stop.aborted) return;
      const e = ConnectError.from(error);
      if (e.code === Code.Unauthenticated) {
        reportIfUnauthenticated(error);
      }
      freshnessState.update((s) => ({ ...s, lastError: e.rawMessage }));
    } finally {
      clearTimeout(silence);
      stop.removeEventListener("abort", abortAttempt);
    }
    if (stop.aborted) return;
    freshnessState.update((s) => ({ ...s, connection: seenAny ? "reconnecting" : "connecting" }));
    await sleep(backoff.next(), stop);
  }
}
