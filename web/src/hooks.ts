// Loading data for a page: one call per change of its inputs, cancelled
// when they change again or the page goes away, and again when a run
// finishes (the data epoch).

import { useEffect, useState } from "preact/hooks";
import { isAbort } from "./api";
import { dataEpoch } from "./freshness";
import { useStore } from "./store";

export interface Loaded<T> {
  /** The last data loaded (kept while a reload is under way). */
  data?: T;
  error?: unknown;
  loading: boolean;
}

/**
 * Runs `load` whenever `key` changes and when a run finishes; `reload()`
 * runs it again.
 */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>): Loaded<T> & { reload: () => void } {
  const epoch = useStore(dataEpoch);
  const [nonce, setNonce] = useState(0);
  const [state, setState] = useState<Loaded<T>>({ loading: true });
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, loading: false });
      },
      (error: unknown) => {
        if (!controller.signal.aborted && !isAbort(error)) setState({ error, loading: false });
      },
    );
    return () => controller.abort();
    // `load` is re-created every render; `key` says when its inputs changed.
  }, [key, epoch, nonce]);
  return { ...state, reload: () => setNonce((n) => n + 1) };
}
