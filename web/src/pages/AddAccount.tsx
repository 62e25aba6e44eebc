// The "Add account" form: the server validates (ids per provider, Azure's
// required credentials) and its INVALID_ARGUMENT message is shown here.

import { useState } from "preact/hooks";
import { accounts, Code, codeOf, describeError } from "../api";
import { ConnectError } from "@connectrpc/connect";

export function AddAccount({ onAdded }: { onAdded: (id: string) => void }) {
  const [provider, setProvider] = useState("1");
  const [externalId, setExternalId] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      const created = await accounts.createAccount({
        account: { provider: Number(provider), externalId: externalId.trim(), displayName: name.trim() },
      });
      setExternalId("");
      setName("");
      onAdded(created.externalId);
    } catch (e) {
      const code = codeOf(e);
      setError(
        code === Code.InvalidArgument || code === Code.AlreadyExists ? ConnectError.from(e).rawMessage : describeError(e),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <form aria-label="Add account" class="add-account" onSubmit={submit}>
      <div class="field">
        <label for="account-provider">Provider</label>
        <select id="account-provider" value={provider} onChange={(e) => setProvider(e.currentTarget.value)}>
          <option value="1">AWS</option>
          <option value="2">Azure</option>
          <option value="3">GCP</option>
        </select>
      </div>
      <div class="field">
        <label for="account-id">Account id</label>
        <input
          id="account-id"
          type="text"
          required
          value={externalId}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "account-error" : undefined}
          onInput={(e) => setExternalId(e.currentTarget.value)}
        />
      </div>
      <div class="field">
        <label for="account-name">Name</label>
        <input id="account-name" type="text" maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </div>
      <div class="form-actions">
        <button type="submit" disabled={busy}>
          Add account
        </button>
      </div>
      <p id="account-error" role="alert" class="field-error add-error">
        {error}
      </p>
    </form>
  );
}
