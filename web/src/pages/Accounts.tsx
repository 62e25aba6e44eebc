import type { AccountsAccess } from "../App";

export function AccountsPage({ access }: { access: AccountsAccess }) {
  return (
    <>
      <h1 tabIndex={-1}>Accounts</h1>
      {access === "no" && <p>You need the accounts:admin permission</p>}
    </>
  );
}
