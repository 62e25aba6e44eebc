// Sign-in for the three modes of /config.json. With "oidc", oidc-client-ts
// runs the authorization-code flow with PKCE in the page; it is loaded only
// in that mode, so the other two never download it.

import type { User, UserManager } from "oidc-client-ts";
import type { ConsoleConfig, OidcSettings } from "./config";
import { session } from "./session";

const CALLBACK_PATH = "/auth/callback";
const REDIRECTS_KEY = "cudly.signin.redirects";
/** More sign-in redirects than this within the window, with no call accepted in between, means a loop. */
const MAX_REDIRECTS = 3;
const REDIRECT_WINDOW_MS = 2 * 60_000;

let manager: UserManager | undefined;
let user: User | undefined;

/** The access token to send, when signed in with OIDC. */
export function accessToken(): string | undefined {
  return user && !user.expired ? user.access_token : undefined;
}

/** Only a same-origin path may be returned to after sign-in. */
export function safeReturnPath(state: unknown): string {
  if (typeof state !== "string" || !state.startsWith("/") || state.startsWith("//")) return "/";
  if (state.startsWith(CALLBACK_PATH)) return "/";
  return state;
}

function displayName(signedIn: User): string {
  const p = signedIn.profile;
  return p.name ?? p.preferred_username ?? p.email ?? p.sub;
}

function adopt(signedIn: User): void {
  user = signedIn;
  session.update((s) => ({ ...s, userName: displayName(signedIn), signingIn: false, problem: undefined }));
}

function recentRedirects(now: number): number[] {
  try {
    const list = JSON.parse(sessionStorage.getItem(REDIRECTS_KEY) ?? "[]") as unknown;
    return Array.isArray(list) ? list.filter((t): t is number => typeof t === "number" && now - t < REDIRECT_WINDOW_MS) : [];
  } catch {
    return [];
  }
}

async function createManager(oidc: OidcSettings): Promise<UserManager> {
  const { UserManager: Manager, WebStorageStateStore } = await import("oidc-client-ts");
  const resource = oidc.resource ? { resource: oidc.resource } : undefined;
  return new Manager({
    authority: oidc.issuer,
    client_id: oidc.clientId,
    redirect_uri: `${location.origin}${CALLBACK_PATH}`,
    post_logout_redirect_uri: `${location.origin}/`,
    response_type: "code",
    scope: oidc.scopes,
    extraQueryParams: resource,
    extraTokenParams: resource,
    userStore: new WebStorageStateStore({ store: sessionStorage }),
    stateStore: new WebStorageStateStore({ store: sessionStorage }),
    // A new sign-in is a redirect (the provider may keep its own session);
    // no hidden iframes or session polling.
    automaticSilentRenew: false,
    monitorSession: false,
  });
}

/**
 * Sends the browser to the provider, to come back to the current URL.
 * Refuses to loop: after a few redirects in a short time the page says so
 * and offers a button instead.
 */
export async function signIn(reason?: string): Promise<void> {
  if (!manager || session.get().signingIn) return;
  const now = Date.now();
  const recent = recentRedirects(now);
  if (recent.length >= MAX_REDIRECTS) {
    session.update((s) => ({
      ...s,
      problem: `The service keeps refusing the signed-in token${reason ? ` (${reason})` : ""}. Check the console's OpenID settings, then sign in again.`,
    }));
    return;
  }
  sessionStorage.setItem(REDIRECTS_KEY, JSON.stringify([...recent, now]));
  session.update((s) => ({ ...s, signingIn: true }));
  const returnTo = safeReturnPath(`${location.pathname}${location.search}${location.hash}`);
  try {
    await manager.signinRedirect({ state: returnTo });
  } catch (error) {
    session.update((s) => ({ ...s, signingIn: false, problem: `Could not reach the sign-in provider: ${String(error)}` }));
  }
}

/**
 * A call succeeded with the signed-in token: the redirects so far were not
 * a loop (an expiring token legitimately signs in again and again).
 */
export function noteTokenAccepted(): void {
  if (user && sessionStorage.getItem(REDIRECTS_KEY) !== null) sessionStorage.removeItem(REDIRECTS_KEY);
}

/** A button's way to try again after a refused loop. */
export function signInAgain(): void {
  sessionStorage.removeItem(REDIRECTS_KEY);
  session.update((s) => ({ ...s, problem: undefined }));
  void signIn();
}

/** Signs out at the provider when it supports it, else locally. */
export async function signOut(): Promise<void> {
  if (!manager) return;
  const idToken = user?.id_token;
  user = undefined;
  try {
    await manager.signoutRedirect({ id_token_hint: idToken });
  } catch {
    await manager.removeUser();
    session.update((s) => ({ ...s, userName: undefined }));
    location.assign("/");
  }
}

/** A call answered UNAUTHENTICATED: what to do depends on the mode. */
export function onUnauthenticated(message: string): void {
  const { mode } = session.get();
  if (mode === "oidc") {
    user = undefined;
    void signIn(message);
  } else if (mode === "proxy") {
    session.update((s) => ({
      ...s,
      problem:
        "You are not signed in. This console relies on the authenticating proxy in front of it to sign you in: reload the page to go through it, or ask its operator.",
    }));
  } else {
    session.update((s) => ({
      ...s,
      problem: "The service requires authentication, but its console is configured without sign-in (auth \"none\").",
    }));
  }
}

/**
 * Sets up sign-in. Resolves true when the app can render, false when the
 * page is leaving for the provider.
 */
export async function startAuth(config: ConsoleConfig): Promise<boolean> {
  session.set({ mode: config.auth, signingIn: false });
  if (config.auth !== "oidc") return true;
  manager = await createManager(config.oidc);
  manager.events.addAccessTokenExpired(() => {
    user = undefined;
    void signIn("the access token expired");
  });

  if (location.pathname === CALLBACK_PATH) {
    try {
      const signedIn = await manager.signinRedirectCallback();
      history.replaceState(null, "", safeReturnPath(signedIn.state));
      adopt(signedIn);
      return true;
    } catch (error) {
      history.replaceState(null, "", "/");
      session.update((s) => ({ ...s, problem: `Sign-in did not complete: ${error instanceof Error ? error.message : String(error)}` }));
      return true;
    }
  }

  const stored = await manager.getUser();
  if (stored && !stored.expired) {
    adopt(stored);
    return true;
  }
  await signIn();
  return !session.get().signingIn;
}
