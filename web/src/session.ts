// Who is signed in and whether the console is on its way to the provider:
// shared by the header, the banner and the API interceptor.

import { Store } from "./store";

/** The sign-in state the page shows. */
export interface Session {
  mode: "none" | "proxy" | "oidc";
  /** The signed-in person's name (oidc only). */
  userName?: string;
  /** A sign-in redirect has started; the banner says so. */
  signingIn: boolean;
  /** Why calls are refused and what to do, in words. */
  problem?: string;
}

export const session = new Store<Session>({ mode: "none", signingIn: false });
