// The filters form. Applying it puts the filters in the URL (first page);
// the page then loads from the URL, so a reload or a shared link is the same.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { parseDecimal } from "../lib/money";
import { DEFAULT_CURRENCY, type ProviderKey, type ViewState } from "../lib/urlState";

interface Fields {
  provider: string;
  service: string;
  region: string;
  accounts: string;
  minSavings: string;
  currency: string;
  minPct: string;
}

function fieldsOf(view: ViewState): Fields {
  return {
    provider: view.provider ?? "",
    service: view.service ?? "",
    region: view.region ?? "",
    accounts: view.accounts.join(", "),
    minSavings: view.minSavings ?? "",
    currency: view.currency ?? DEFAULT_CURRENCY,
    minPct: view.minPct ?? "",
  };
}

type Errors = Partial<Record<keyof Fields, string>>;

function validate(f: Fields): Errors {
  const errors: Errors = {};
  if (f.minSavings.trim() && !parseDecimal(f.minSavings)) {
    errors.minSavings = "Enter an amount such as 250 or 99.50 (no sign, at most 9 decimals).";
  }
  if (!/^[A-Za-z]{3}$/.test(f.currency.trim())) errors.currency = "Enter a three-letter currency code such as USD.";
  const pct = f.minPct.trim();
  if (pct && !(/^\d{1,3}(\.\d+)?$/.test(pct) && Number(pct) <= 100)) errors.minPct = "Enter a percentage from 0 to 100.";
  if (f.service.length > 256) errors.service = "At most 256 characters.";
  if (f.region.length > 256) errors.region = "At most 256 characters.";
  return errors;
}

function toView(f: Fields): ViewState {
  const clean = (s: string) => s.trim() || undefined;
  return {
    provider: (clean(f.provider) as ProviderKey | undefined) ?? undefined,
    service: clean(f.service),
    region: clean(f.region),
    accounts: [...new Set(f.accounts.split(",").map((a) => a.trim()).filter(Boolean))],
    minSavings: clean(f.minSavings),
    currency: f.currency.trim().toUpperCase(),
    minPct: clean(f.minPct),
  };
}

function Field(props: { id: keyof Fields; label: string; hint?: string; error?: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <label for={`filter-${props.id}`}>{props.label}</label>
      {props.children}
      {props.hint && (
        <span id={`${props.id}-hint`} class="hint">
          {props.hint}
        </span>
      )}
      {props.error && (
        <span id={`${props.id}-error`} class="field-error">
          {props.error}
        </span>
      )}
    </div>
  );
}

export function Filters({ view, onApply }: { view: ViewState; onApply: (view: ViewState) => void }) {
  const [fields, setFields] = useState(() => fieldsOf(view));
  const [errors, setErrors] = useState<Errors>({});
  const viewKey = JSON.stringify(fieldsOf(view));
  // Back/forward or a new URL: show the filters of the view now shown.
  useEffect(() => {
    setFields(fieldsOf(view));
    setErrors({});
  }, [viewKey]);

  const set = (key: keyof Fields) => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement | HTMLSelectElement).value;
    setFields((f) => ({ ...f, [key]: value }));
  };
  const aria = (key: keyof Fields, hint?: boolean) => ({
    id: `filter-${key}`,
    "aria-invalid": errors[key] ? true : undefined,
    "aria-describedby": [hint && `${key}-hint`, errors[key] && `${key}-error`].filter(Boolean).join(" ") || undefined,
  });
  const submit = (event: Event) => {
    event.preventDefault();
    const found = validate(fields);
    setErrors(found);
    if (Object.keys(found).length > 0) {
      const first = Object.keys(found)[0];
      document.getElementById(`filter-${first}`)?.focus();
      return;
    }
    onApply(toView(fields));
  };

  return (
    <form aria-label="Filters" class="filters" onSubmit={submit} noValidate>
      <Field id="provider" label="Provider">
        <select {...aria("provider")} value={fields.provider} onChange={set("provider")}>
          <option value="">All</option>
          <option value="aws">AWS</option>
          <option value="azure">Azure</option>
          <option value="gcp">GCP</option>
        </select>
      </Field>
      <Field id="service" label="Service" error={errors.service}>
        <input {...aria("service")} type="text" value={fields.service} onInput={set("service")} placeholder="e.g. ec2" />
      </Field>
      <Field id="region" label="Region" error={errors.region}>
        <input {...aria("region")} type="text" value={fields.region} onInput={set("region")} placeholder="e.g. us-east-1" />
      </Field>
      <Field id="accounts" label="Accounts" hint="Account ids, separated by commas">
        <input {...aria("accounts", true)} type="text" value={fields.accounts} onInput={set("accounts")} />
      </Field>
      <Field id="minSavings" label="Minimum savings per month" error={errors.minSavings}>
        <input {...aria("minSavings")} type="text" inputMode="decimal" value={fields.minSavings} onInput={set("minSavings")} />
      </Field>
      <Field id="currency" label="Currency" hint="Of the minimum" error={errors.currency}>
        <input {...aria("currency", true)} type="text" maxLength={3} size={4} value={fields.currency} onInput={set("currency")} />
      </Field>
      <Field id="minPct" label="Minimum savings %" error={errors.minPct}>
        <input {...aria("minPct")} type="text" inputMode="decimal" value={fields.minPct} onInput={set("minPct")} />
      </Field>
      <div class="form-actions">
        <button type="submit">Apply</button>
        <button type="button" class="secondary" onClick={() => onApply({ accounts: [] })}>
          Clear filters
        </button>
      </div>
    </form>
  );
}
