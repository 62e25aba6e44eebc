// The recommendations view lives in the query string of `/`, so a view can
// be shared and reloads to the same page. Parsing never throws: a value that
// is not valid is left out and reported, so the page shows what it ignored.

import { parseDecimal } from "./money";

export const PROVIDERS = ["aws", "azure", "gcp"] as const;
export type ProviderKey = (typeof PROVIDERS)[number];

/** What the recommendations page shows. Absent fields are no filter. */
export interface ViewState {
  provider?: ProviderKey;
  service?: string;
  region?: string;
  /** Account ids (external ids), in the order typed. */
  accounts: string[];
  /** A non-negative decimal string, per month. */
  minSavings?: string;
  /** ISO 4217 code the minimum is in; the server never converts currencies. */
  currency?: string;
  /** A decimal string between 0 and 100. */
  minPct?: string;
  /** The page token of the page shown; absent for the first page. */
  page?: string;
}

/** A parsed query string and what in it was ignored, in words. */
export interface ParsedView {
  view: ViewState;
  ignored: string[];
}

/** The currency a minimum is in when the URL names none. */
export const DEFAULT_CURRENCY = "USD";

const MAX_TEXT = 256;
const MAX_ACCOUNTS = 1000;
const PERCENT = /^\d{1,3}(\.\d+)?$/;
const CURRENCY = /^[A-Z]{3}$/;

function text(value: string | null): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** The view a query string ("?provider=aws&page=…" or without "?") describes. */
export function parseView(search: string): ParsedView {
  const params = new URLSearchParams(search);
  const view: ViewState = { accounts: [] };
  const ignored: string[] = [];

  const provider = text(params.get("provider"))?.toLowerCase();
  if (provider !== undefined) {
    if ((PROVIDERS as readonly string[]).includes(provider)) view.provider = provider as ProviderKey;
    else ignored.push(`provider "${provider}" is not aws, azure or gcp`);
  }

  for (const key of ["service", "region"] as const) {
    const value = text(params.get(key));
    if (value === undefined) continue;
    if (value.length > MAX_TEXT) ignored.push(`${key} is longer than ${MAX_TEXT} characters`);
    else view[key] = value;
  }

  const accounts = text(params.get("accounts"));
  if (accounts !== undefined) {
    const ids = accounts.split(",").map((id) => id.trim()).filter((id) => id !== "");
    const tooLong = ids.filter((id) => id.length > MAX_TEXT);
    if (tooLong.length > 0) ignored.push(`account ids longer than ${MAX_TEXT} characters`);
    const kept = [...new Set(ids.filter((id) => id.length <= MAX_TEXT))];
    if (kept.length > MAX_ACCOUNTS) ignored.push(`accounts beyond the first ${MAX_ACCOUNTS}`);
    view.accounts = kept.slice(0, MAX_ACCOUNTS);
  }

  const minSavings = text(params.get("min_savings"));
  if (minSavings !== undefined) {
    if (parseDecimal(minSavings)) view.minSavings = minSavings;
    else ignored.push(`min_savings "${minSavings}" is not a non-negative decimal`);
  }

  const currency = text(params.get("currency"))?.toUpperCase();
  if (currency !== undefined) {
    if (CURRENCY.test(currency)) view.currency = currency;
    else ignored.push(`currency "${currency}" is not a three-letter code`);
  }

  const minPct = text(params.get("min_pct"));
  if (minPct !== undefined) {
    if (PERCENT.test(minPct) && Number(minPct) <= 100) view.minPct = minPct;
    else ignored.push(`min_pct "${minPct}" is not a percentage from 0 to 100`);
  }

  const page = text(params.get("page"));
  if (page !== undefined) view.page = page;

  return { view, ignored };
}

/** The query string (with "?", or "" when empty) for a view, in a fixed order. */
export function viewToSearch(view: ViewState): string {
  const params = new URLSearchParams();
  if (view.provider) params.set("provider", view.provider);
  if (view.service) params.set("service", view.service);
  if (view.region) params.set("region", view.region);
  if (view.accounts.length > 0) params.set("accounts", view.accounts.join(","));
  if (view.minSavings) {
    params.set("min_savings", view.minSavings);
    if (view.currency && view.currency !== DEFAULT_CURRENCY) params.set("currency", view.currency);
  }
  if (view.minPct) params.set("min_pct", view.minPct);
  if (view.page) params.set("page", view.page);
  const query = params.toString();
  return query ? `?${query}` : "";
}

/** The same filters on their first page. */
export function withoutPage(view: ViewState): ViewState {
  const rest = { ...view };
  delete rest.page;
  return rest;
}
