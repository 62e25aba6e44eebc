// The page header: name, freshness, Refresh, who is signed in, the nav.

import { signInAgain, signOut } from "../auth";
import { Link, useLocation } from "../router";
import { session } from "../session";
import { useStore } from "../store";
import { Banner } from "./Banner";
import { RefreshButton } from "./RefreshButton";

function NavLink({ href, label }: { href: string; label: string }) {
  const { path } = useLocation();
  return (
    <li>
      <Link href={href} aria-current={path === href ? "page" : undefined}>
        {label}
      </Link>
    </li>
  );
}

export function Header({ showAccounts }: { showAccounts: boolean }) {
  const s = useStore(session);
  return (
    <header class="site-header">
      <div class="header-top">
        <p class="brand">CUDly console</p>
        {s.mode === "oidc" && s.userName && (
          <div class="user">
            <span>Signed in as {s.userName}</span>
            <button type="button" class="secondary" onClick={() => void signOut()}>
              Sign out
            </button>
          </div>
        )}
      </div>
      <nav aria-label="Main">
        <ul>
          <NavLink href="/" label="Recommendations" />
          <NavLink href="/runs" label="Runs" />
          {showAccounts && <NavLink href="/accounts" label="Accounts" />}
        </ul>
      </nav>
      {s.problem && (
        <div role="alert" class="problem">
          <p>{s.problem}</p>
          {s.mode === "oidc" && (
            <button type="button" onClick={signInAgain}>
              Sign in again
            </button>
          )}
        </div>
      )}
      <div class="header-status">
        <Banner />
        <RefreshButton />
      </div>
    </header>
  );
}
