// `/`: filters, summary, chart and one page of the table, all from the URL.

import { useEffect } from "preact/hooks";
import { recommendations, describeError } from "../api";
import type { GroupTotal, Summary as SummaryMessage } from "../gen/cudly/recommendations/v1/recommendations_pb";
import { providerName } from "../lib/labels";
import { parseView, viewToSearch, withoutPage, type ViewState } from "../lib/urlState";
import { collectedOnce } from "../freshness";
import { useLoad } from "../hooks";
import { useStore } from "../store";
import { listRequest } from "../query";
import { navigate, useLocation } from "../router";
import { BarChart, type Series } from "./Chart";
import { Filters } from "./Filters";
import { RecTable } from "./RecTable";
import { Summary } from "./Summary";
import { Pager } from "../components/Pager";

/** Services charted at most (those saving most); the note counts the rest. */
const MAX_CHART_SERVICES = 12;

/** history.state of a recommendations entry: the tokens of the pages before it. */
interface PageStack {
  previous: string[];
}

function stackOf(state: unknown): string[] {
  const previous = (state as Partial<PageStack> | null)?.previous;
  return Array.isArray(previous) ? previous.filter((t): t is string => typeof t === "string") : [];
}

/**
 * Bars from the summary's groups: one series per provider, or per service
 * (named with its provider where two providers share a service name). The
 * server totals every matching row, in the same call as the table's page.
 */
function seriesOf(groups: GroupTotal[], label: (g: GroupTotal) => string): Series[] {
  const series = new Map<string, Series>();
  for (const g of groups) {
    if (!g.total) continue;
    const name = label(g);
    const entry = series.get(name) ?? { label: name, totals: [] };
    entry.totals.push(g.total);
    series.set(name, entry);
  }
  return [...series.values()];
}

function Chart({ summary }: { summary: SummaryMessage }) {
  const providersOf = new Map<string, Set<number>>();
  for (const g of summary.byService) providersOf.set(g.service, (providersOf.get(g.service) ?? new Set()).add(g.provider));
  const serviceName = (g: GroupTotal) =>
    (providersOf.get(g.service)?.size ?? 0) > 1 ? `${g.service} (${providerName(g.provider)})` : g.service;
  const byProvider = seriesOf(summary.byProvider, (g) => providerName(g.provider));
  const byService = seriesOf(summary.byService, serviceName);
  return (
    <div class="charts">
      <BarChart caption="Savings by provider" series={byProvider} />
      <BarChart caption="Savings by service" series={byService} limit={MAX_CHART_SERVICES} />
    </div>
  );
}

export function RecommendationsPage() {
  const location = useLocation();
  const { view, ignored } = parseView(location.search);
  const previous = stackOf(location.state);
  const search = viewToSearch(view);

  useEffect(() => {
    document.title = "Recommendations · CUDly console";
  }, []);

  const collected = useStore(collectedOnce);
  const page = useLoad(`${collected}|${search}`, async (signal) =>
    collected === "yes" ? recommendations.listRecommendations(listRequest(view), { signal }) : undefined,
  );
  const rows = page.data?.recommendations ?? [];

  const apply = (next: ViewState) => navigate(`/${viewToSearch(withoutPage(next))}`);
  const nextPage = () => {
    const token = page.data?.nextPageToken;
    if (!token || page.loading) return;
    navigate(`/${viewToSearch({ ...view, page: token })}`, { state: { previous: [...previous, view.page ?? ""] } });
  };
  const previousPage = () => {
    if (page.loading) return;
    // Without the stack (a shared link), "previous" goes back to the first page.
    const token = previous.at(-1) || undefined;
    navigate(`/${viewToSearch({ ...view, page: token })}`, { state: { previous: previous.slice(0, -1) } });
  };

  return (
    <>
      <h1 tabIndex={-1}>Recommendations</h1>
      <Filters view={view} onApply={apply} />
      {ignored.length > 0 && (
        <p class="notice" role="note">
          Ignored in the address: {ignored.join("; ")}.
        </p>
      )}
      {page.error !== undefined && (
        <div role="alert" class="error-box">
          <p>The recommendations could not be loaded: {describeError(page.error)}</p>
          {view.page && (
            <p>
              <button type="button" onClick={() => navigate(`/${viewToSearch(withoutPage(view))}`)}>
                Go to the first page
              </button>
            </p>
          )}
        </div>
      )}
      {collected === "never" ? (
        <p class="notice" data-testid="nothing-collected">
          No recommendations yet: Refresh collects them from every enabled account.
        </p>
      ) : (
        <>
          <Summary summary={page.data?.summary} />
          {page.data?.summary && <Chart summary={page.data.summary} />}
        </>
      )}
      <RecTable rows={rows} busy={page.loading || collected === "unknown"} />
      <Pager hasPrevious={!!view.page} hasNext={!!page.data?.nextPageToken} onPrevious={previousPage} onNext={nextPage} />
    </>
  );
}
