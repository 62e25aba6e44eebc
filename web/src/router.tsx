// History-based routing for the three pages: pushState, popstate and links
// that do not reload the page. Small enough not to need a library.

import type { ComponentChildren } from "preact";
import { Store, useStore } from "./store";

export interface Location {
  path: string;
  search: string;
  /** history.state of the entry (the recommendations page keeps its page stack there). */
  state: unknown;
}

function current(): Location {
  return { path: location.pathname, search: location.search, state: history.state };
}

export const currentLocation = new Store<Location>(current());

/** Takes in a URL changed without navigate() (e.g. the sign-in callback's replaceState). */
export function syncLocation(): void {
  currentLocation.set(current());
}

addEventListener("popstate", syncLocation);

/** Goes to a URL of the app, adding a history entry (or replacing the current one). */
export function navigate(url: string, options: { state?: unknown; replace?: boolean } = {}): void {
  const state = options.state ?? null;
  if (options.replace) history.replaceState(state, "", url);
  else history.pushState(state, "", url);
  currentLocation.set(current());
}

export function useLocation(): Location {
  return useStore(currentLocation);
}

/** An <a> that navigates inside the app; modified clicks open normally. */
export function Link(props: { href: string; children: ComponentChildren; "aria-current"?: "page" }) {
  const { href, children } = props;
  const onClick = (event: MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} aria-current={props["aria-current"]}>
      {children}
    </a>
  );
}
