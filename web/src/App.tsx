// The page frame and its routes.

import { useEffect, useRef, useState } from "preact/hooks";
import { accounts, Code, codeOf } from "./api";
import { Header } from "./components/Header";
import { AccountsPage } from "./pages/Accounts";
import { RecommendationsPage } from "./pages/Recommendations";
import { RunsPage } from "./pages/Runs";
import { useLocation } from "./router";

/** "yes" when ListAccounts answers, "no" when the caller may not, "unknown" until then. */
export type AccountsAccess = "unknown" | "yes" | "no";

function useAccountsAccess(): AccountsAccess {
  const [access, setAccess] = useState<AccountsAccess>("unknown");
  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = async (attempt: number) => {
      try {
        await accounts.listAccounts({ pageSize: 1 });
        if (!cancelled) setAccess("yes");
      } catch (error) {
        if (cancelled) return;
        const code = codeOf(error);
        if (code === Code.PermissionDenied || code === Code.Unauthenticated || attempt >= 5) {
          setAccess("no");
        } else {
          // The service may be restarting: ask again a little later.
          timer = setTimeout(() => void check(attempt + 1), 2_000 * 2 ** attempt);
        }
      }
    };
    void check(0);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, []);
  return access;
}

function NotFound() {
  return (
    <>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is no page at this address. <a href="/">Go to the recommendations.</a>
      </p>
    </>
  );
}

export function App() {
  const { path } = useLocation();
  const access = useAccountsAccess();
  const main = useRef<HTMLElement>(null);
  const firstRender = useRef(true);

  // After a navigation, move focus to the new page's heading so a screen
  // reader announces it (not on the first load: focus starts at the top).
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    main.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [path]);

  let page;
  if (path === "/") page = <RecommendationsPage />;
  else if (path === "/runs") page = <RunsPage />;
  else if (path === "/accounts") page = <AccountsPage access={access} />;
  else page = <NotFound />;

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <Header showAccounts={access === "yes"} />
      <main id="main" ref={main}>
        {page}
      </main>
    </>
  );
}
