// The ListRecommendations request for a view of the recommendations page.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListRecommendationsRequestSchema } from "./gen/cudly/recommendations/v1/recommendations_pb";
import { PROVIDER_NUMBERS } from "./lib/labels";
import { parseDecimal } from "./lib/money";
import { DEFAULT_CURRENCY, type ViewState } from "./lib/urlState";

export type ListRequest = MessageInitShape<typeof ListRecommendationsRequestSchema>;

/** Rows per page: the server's default, and what the 50 ms render target is measured on. */
export const PAGE_SIZE = 100;

/** The request for a view's filters and page. */
export function listRequest(view: ViewState, pageSize = PAGE_SIZE): ListRequest {
  const minimum = view.minSavings ? parseDecimal(view.minSavings) : undefined;
  return {
    provider: view.provider ? PROVIDER_NUMBERS[view.provider] : 0,
    service: view.service ?? "",
    region: view.region ?? "",
    accountIds: view.accounts,
    minMonthlySavings: minimum ? { currencyCode: view.currency ?? DEFAULT_CURRENCY, ...minimum } : undefined,
    minSavingsPercentage: view.minPct ? Number(view.minPct) : 0,
    pageSize,
    pageToken: view.page ?? "",
  };
}
