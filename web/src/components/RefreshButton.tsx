// Refresh: starts a collection or joins the one running, and says which.

import { useState } from "preact/hooks";
import { Code, codeOf, describeError, recommendations } from "../api";

export function RefreshButton() {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState("");
  const refresh = async () => {
    setBusy(true);
    setResult("");
    try {
      const response = await recommendations.refreshRecommendations({});
      setResult(response.deduplicated ? "Joined the collection already running" : "Started a new collection");
    } catch (error) {
      setResult(codeOf(error) === Code.Unavailable ? "The collector is unavailable; try again shortly" : describeError(error));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="refresh">
      <button type="button" onClick={refresh} disabled={busy} aria-busy={busy}>
        Refresh
      </button>
      <p role="status" data-testid="refresh-result" class="refresh-result">
        {result}
      </p>
    </div>
  );
}
