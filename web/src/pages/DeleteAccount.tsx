// Deleting an account removes its recommendations too: the dialog says how
// many before anything is deleted.

import { useEffect, useRef, useState } from "preact/hooks";
import { accounts, describeError, recommendations } from "../api";
import type { Account } from "../gen/cudly/recommendations/v1/accounts_pb";
import { collectedOnce } from "../freshness";
import { plural } from "../lib/labels";

/** How many recommendations the account's deletion removes (its own rows). */
async function countRecommendations(externalId: string): Promise<bigint> {
  // Listing on a database that never collected would start a cold-start run.
  if (collectedOnce.get() === "never") return 0n;
  const response = await recommendations.listRecommendations({ accountIds: [externalId], pageSize: 1 });
  return response.summary?.count ?? 0n;
}

export function DeleteDialog(props: { account: Account; onClose: (deleted?: bigint) => void }) {
  const { account } = props;
  const dialog = useRef<HTMLDialogElement>(null);
  const [count, setCount] = useState<bigint | undefined>();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    dialog.current?.showModal();
    let cancelled = false;
    countRecommendations(account.externalId).then(
      (n) => !cancelled && setCount(n),
      (e: unknown) => !cancelled && setError(`Could not count its recommendations: ${describeError(e)}`),
    );
    return () => {
      cancelled = true;
    };
  }, [account.externalId]);

  const confirm = async () => {
    setBusy(true);
    try {
      const response = await accounts.deleteAccount({ provider: account.provider, externalId: account.externalId });
      dialog.current?.close();
      props.onClose(response.recommendationsDeleted);
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };
  const cancel = () => {
    dialog.current?.close();
    props.onClose();
  };

  return (
    <dialog ref={dialog} aria-labelledby="delete-title" aria-describedby="delete-text" onCancel={(e) => (e.preventDefault(), cancel())}>
      <h2 id="delete-title">Delete {account.externalId}?</h2>
      <p id="delete-text">
        {count === undefined
          ? "Counting its recommendations…"
          : `Deleting ${account.externalId} removes ${plural(count, "recommendation")}.`}
      </p>
      {error && (
        <p role="alert" class="error-text">
          {error}
        </p>
      )}
      <div class="dialog-actions">
        <button type="button" class="secondary" onClick={cancel} autoFocus>
          Cancel
        </button>
        <button type="button" class="danger" onClick={confirm} disabled={busy || (count === undefined && !error)}>
          Delete
        </button>
      </div>
    </dialog>
  );
}
