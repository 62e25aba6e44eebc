// "Previous page" / "Next page" under a table: the one pager of every page.

import { useState } from "preact/hooks";

export function Pager(props: { hasPrevious: boolean; hasNext: boolean; onPrevious: () => void; onNext: () => void }) {
  return (
    <div class="pager" role="group" aria-label="Pages">
      <button type="button" onClick={props.onPrevious} disabled={!props.hasPrevious}>
        Previous page
      </button>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext}>
        Next page
      </button>
    </div>
  );
}

/**
 * Keyset paging kept in the page's state (not the address): the token of the
 * page shown, and the way back through the tokens of the pages before it.
 */
export function usePageTokens() {
  const [tokens, setTokens] = useState<string[]>([""]);
  return {
    /** The page token to ask for ("" for the first page). */
    token: tokens[tokens.length - 1],
    hasPrevious: tokens.length > 1,
    previous: () => setTokens((t) => (t.length > 1 ? t.slice(0, -1) : t)),
    next: (token: string | undefined) => {
      if (token) setTokens((t) => [...t, token]);
    },
  };
}
