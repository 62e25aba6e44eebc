// `/accounts`: the registry, for callers with accounts:admin.

import { useEffect, useState } from "preact/hooks";
import { accounts, Code, codeOf, describeError } from "../api";
import type { AccountsAccess } from "../App";
import type { Account } from "../gen/cudly/recommendations/v1/accounts_pb";
import { useLoad } from "../hooks";
import { timestampMs } from "../lib/freshnessView";
import { plural, providerName } from "../lib/labels";
import { AddAccount } from "./AddAccount";
import { DeleteDialog } from "./DeleteAccount";
import { Pager, usePageTokens } from "../components/Pager";

const ACCOUNTS_PER_PAGE = 50;
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function credentialsWord(account: Account): string {
  switch (account.credentials.case) {
    case "aws":
      return account.credentials.value.roleArn ? `Role ${account.credentials.value.roleArn}` : "Ambient credentials";
    case "azure":
      return `Application ${account.credentials.value.clientId}`;
    case "gcp":
      return account.credentials.value.serviceAccountKeyRef ? "Service-account key" : "Metadata server";
    default:
      return "Provider default";
  }
}

export function AccountsPage({ access }: { access: AccountsAccess }) {
  const pages = usePageTokens();
  const [status, setStatus] = useState("");
  const [deleting, setDeleting] = useState<Account | undefined>();
  const [pending, setPending] = useState<string | undefined>();
  const token = pages.token;
  const list = useLoad(token, (signal) =>
    access === "no" ? Promise.resolve(undefined) : accounts.listAccounts({ pageSize: ACCOUNTS_PER_PAGE, pageToken: token }, { signal }),
  );
  useEffect(() => {
    document.title = "Accounts · CUDly console";
  }, []);

  const denied = access === "no" || (list.error !== undefined && codeOf(list.error) === Code.PermissionDenied);
  if (denied) {
    return (
      <>
        <h1 tabIndex={-1}>Accounts</h1>
        <p role="alert" class="notice">
          You need the accounts:admin permission to see and change the accounts.
        </p>
      </>
    );
  }

  const toggle = async (account: Account) => {
    const enable = !account.enabled;
    setPending(account.externalId);
    try {
      // Only `enabled` is set, so only it changes (UpdateAccount's optional fields).
      await accounts.updateAccount({ provider: account.provider, externalId: account.externalId, enabled: enable });
      setStatus(`${enable ? "Enabled" : "Disabled"} ${account.externalId}.`);
      list.reload();
    } catch (e) {
      setStatus(`Could not ${enable ? "enable" : "disable"} ${account.externalId}: ${describeError(e)}`);
    } finally {
      setPending(undefined);
    }
  };

  const rows = list.data?.accounts ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Accounts</h1>
      <AddAccount
        onAdded={(id) => {
          setStatus(`Added ${id}.`);
          list.reload();
        }}
      />
      <p role="status" class="status-line" data-testid="accounts-status">
        {status}
      </p>
      {list.error !== undefined && (
        <p role="alert" class="error-box">
          The accounts could not be loaded: {describeError(list.error)}
        </p>
      )}
      <div class="table-scroll" tabIndex={0} role="region" aria-label="Accounts table">
        <table class="data" aria-busy={list.loading}>
          <caption>Accounts</caption>
          <thead>
            <tr>
              <th scope="col">Provider</th>
              <th scope="col">Account id</th>
              <th scope="col">Name</th>
              <th scope="col">Collected</th>
              <th scope="col">Credentials</th>
              <th scope="col">Added</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td colSpan={7} class="empty">
                  {list.loading ? "Loading…" : "No accounts registered."}
                </td>
              </tr>
            ) : (
              rows.map((a) => {
                const added = timestampMs(a.createdAt);
                return (
                  <tr key={`${a.provider}/${a.externalId}`}>
                    <td>{providerName(a.provider)}</td>
                    <td>{a.externalId}</td>
                    <td>{a.displayName || a.externalId}</td>
                    <td>{a.enabled ? "Enabled" : "Disabled"}</td>
                    <td>{credentialsWord(a)}</td>
                    <td>{added !== undefined ? dateFormat.format(added) : "—"}</td>
                    <td>
                      <div class="row-actions">
                        <button type="button" class="secondary" disabled={pending === a.externalId} onClick={() => void toggle(a)}>
                          {a.enabled ? "Disable" : "Enable"} <span class="visually-hidden">{a.externalId}</span>
                        </button>
                        <button type="button" class="secondary" onClick={() => setDeleting(a)}>
                          Delete <span class="visually-hidden">{a.externalId}</span>
                        </button>
                      </div>
                    </td>
                  </tr>
                );
              })
            )}
          </tbody>
        </table>
      </div>
      <Pager
        hasPrevious={pages.hasPrevious}
        hasNext={!!list.data?.nextPageToken}
        onPrevious={pages.previous}
        onNext={() => {
          if (!list.loading) pages.next(list.data?.nextPageToken);
        }}
      />
      {deleting && (
        <DeleteDialog
          account={deleting}
          onClose={(deleted) => {
            if (deleted !== undefined) {
              setStatus(`Deleted ${deleting.externalId}: ${plural(deleted, "recommendation")} removed.`);
              list.reload();
            }
            setDeleting(undefined);
          }}
        />
      )}
    </>
  );
}
