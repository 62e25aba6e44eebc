// `/`: filters, summary, chart and one page of the table, all from the URL.

import { useEffect } from "preact/hooks";
import { recommendations, describeError } from "../api";
import { PROVIDER_NAMES, PROVIDER_NUMBERS } from "../lib/labels";
import { PROVIDERS, parseView, viewToSearch, withoutPage, type ViewState } from "../lib/urlState";
import { collectedOnce } from "../freshness";
import { useLoad } from "../hooks";
import { useStore } from "../store";
import { listRequest } from "../query";
import { navigate, useLocation } from "../router";
import { BarChart, type Series } from "./Chart";
import { Filters } from "./Filters";
import { RecTable } from "./RecTable";
import { Summary } from "./Summary";

/** Services charted at most: the first ones of the page shown (largest savings first). */
const MAX_CHART_SERVICES = 8;

/** history.state of a recommendations entry: the tokens of the pages before it. */
interface PageStack {
  previous: string[];
}

function stackOf(state: unknown): string[] {
  const previous = (state as Partial<PageStack> | null)?.previous;
  return Array.isArray(previous) ? previous.filter((t): t is string => typeof t === "string") : [];
}

function Chart({ view, services, epoch }: { view: ViewState; services: string[]; epoch: number }) {
  const filters = withoutPage(view);
  // Reloaded with the page's data (its epoch), not on its own: the services
  // charted come from the page, so loading both at once would load twice.
  const key = `${viewToSearch(filters)}|${services.join(",")}|${epoch}`;
  // One summary call per provider and per service (page size 1: only the
  // summary is read), so each bar covers every matching row, not one page.
  const charted = useLoad(key, async (signal) => {
    const total = async (change: Partial<ViewState>, label: string): Promise<Series> => {
      const response = await recommendations.listRecommendations(listRequest({ ...filters, ...change }, 1), { signal });
      return { label, totals: response.summary?.totals ?? [] };
    };
    const providers = view.provider ? [view.provider] : PROVIDERS;
    const [byProvider, byService] = await Promise.all([
      Promise.all(providers.map((p) => total({ provider: p }, PROVIDER_NAMES[PROVIDER_NUMBERS[p]]))),
      Promise.all(services.map((s) => total({ service: s }, s))),
    ]);
    return { byProvider, byService };
  }, { followEpoch: false });
  const note = view.service ? undefined : `The services of the page shown, at most ${MAX_CHART_SERVICES}; each bar totals every matching row.`;
  return (
    <div class="charts">
      <BarChart caption="Savings by provider" series={charted.data?.byProvider} loading={charted.loading} />
      <BarChart caption="Savings by service" series={charted.data?.byService} loading={charted.loading} note={note} />
      {charted.error !== undefined && <p class="error-text">The chart could not be loaded: {describeError(charted.error)}</p>}
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
  const services = view.service ? [view.service] : [...new Set(rows.map((r) => r.service))].slice(0, MAX_CHART_SERVICES);

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
          {page.data && <Chart view={view} services={services} epoch={page.epoch ?? 0} />}
        </>
      )}
      <RecTable rows={rows} busy={page.loading || collected === "unknown"} />
      <div class="pager" role="group" aria-label="Pages">
        <button type="button" onClick={previousPage} disabled={!view.page}>
          Previous page
        </button>
        <button type="button" onClick={nextPage} disabled={!page.data?.nextPageToken}>
          Next page
        </button>
      </div>
    </>
  );
}
