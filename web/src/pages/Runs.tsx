// `/runs`: the collection history, newest first, a page at a time.

import { useEffect } from "preact/hooks";
import { describeError, recommendations } from "../api";
import type { Collection } from "../gen/cudly/recommendations/v1/recommendations_pb";
import { useLoad } from "../hooks";
import { formatDuration } from "../lib/ago";
import { failureRows, timestampMs } from "../lib/freshnessView";
import { outcomeWord, plural, triggerWord } from "../lib/labels";
import { Pager, usePageTokens } from "../components/Pager";

const RUNS_PER_PAGE = 25;
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const countFormat = new Intl.NumberFormat();

function RunRow({ run }: { run: Collection }) {
  const started = timestampMs(run.startedAt);
  const finished = timestampMs(run.finishedAt);
  const requests = run.providers.reduce((sum, p) => sum + p.requestCount, 0n);
  const failures = failureRows(run.providers);
  const failedAccounts = run.providers.reduce((n, p) => n + p.accountsFailed + p.accountsPartiallySucceeded, 0);
  return (
    <tr>
      <td>{started !== undefined ? <time dateTime={new Date(started).toISOString()}>{dateFormat.format(started)}</time> : "—"}</td>
      <td>{triggerWord(run.trigger)}</td>
      <td>
        {outcomeWord(run.outcome)}
        {run.error && <span class="muted small block">{run.error}</span>}
      </td>
      <td>{started !== undefined && finished !== undefined ? formatDuration(finished - started) : "running"}</td>
      <td class="num">{countFormat.format(run.recommendationCount)}</td>
      <td class="num">{countFormat.format(requests)}</td>
      <td>
        {failures.length === 0 ? (
          "none"
        ) : (
          <details>
            <summary>
              {plural(failures.length, "failure")} in {plural(failedAccounts, "account")}
            </summary>
            <ul class="failure-list">
              {failures.map((f, i) => (
                <li key={i}>
                  {[f.provider, f.account, f.service, f.region].filter(Boolean).join(" · ")}: {f.error}
                </li>
              ))}
            </ul>
          </details>
        )}
      </td>
    </tr>
  );
}

export function RunsPage() {
  // Tokens of the pages before the one shown; "" is the first page.
  const pages = usePageTokens();
  const token = pages.token;
  const runs = useLoad(token, (signal) =>
    recommendations.listCollections({ pageSize: RUNS_PER_PAGE, pageToken: token }, { signal }),
  );
  useEffect(() => {
    document.title = "Runs · CUDly console";
  }, []);
  const list = runs.data?.collections ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Runs</h1>
      {runs.error !== undefined && (
        <p role="alert" class="error-box">
          The runs could not be loaded: {describeError(runs.error)}
        </p>
      )}
      <div class="table-scroll" tabIndex={0} role="region" aria-label="Runs table">
        <table class="data" aria-busy={runs.loading}>
          <caption>Runs</caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Trigger</th>
              <th scope="col">Outcome</th>
              <th scope="col">Duration</th>
              <th scope="col" class="num">Recommendations</th>
              <th scope="col" class="num">Requests</th>
              <th scope="col">Failures</th>
            </tr>
          </thead>
          <tbody>
            {list.length === 0 ? (
              <tr>
                <td colSpan={7} class="empty">
                  {runs.loading ? "Loading…" : "No runs yet."}
                </td>
              </tr>
            ) : (
              list.map((run) => <RunRow key={run.id} run={run} />)
            )}
          </tbody>
        </table>
      </div>
      <Pager
        hasPrevious={pages.hasPrevious}
        hasNext={!!runs.data?.nextPageToken}
        onPrevious={pages.previous}
        onNext={() => {
          if (!runs.loading) pages.next(runs.data?.nextPageToken);
        }}
      />
    </>
  );
}
