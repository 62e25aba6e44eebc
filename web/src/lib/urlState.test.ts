import { describe, expect, it } from "vitest";
import { parseView, viewToSearch, withoutPage, type ViewState } from "./urlState";

describe("URL state", () => {
  it("round-trips every filter and the page token", () => {
    const view: ViewState = {
      provider: "azure",
      service: "virtual_machines",
      region: "westeurope",
      accounts: ["111111111111", "sub-2"],
      minSavings: "250.5",
      currency: "EUR",
      minPct: "12.5",
      page: "tok/+=en",
    };
    const search = viewToSearch(view);
    expect(parseView(search)).toEqual({ view, ignored: [] });
  });

  it("writes nothing for the unfiltered first page", () => {
    expect(viewToSearch({ accounts: [] })).toBe("");
    expect(parseView("")).toEqual({ view: { accounts: [] }, ignored: [] });
  });

  it("keeps a fixed parameter order so equal views have equal URLs", () => {
    expect(viewToSearch({ page: "p", accounts: ["a"], provider: "aws" })).toBe("?provider=aws&accounts=a&page=p");
  });

  it("leaves the default currency out of the URL", () => {
    expect(viewToSearch({ accounts: [], minSavings: "5", currency: "USD" })).toBe("?min_savings=5");
    expect(viewToSearch({ accounts: [], currency: "EUR" })).toBe("");
  });

  it("ignores bad values and says which", () => {
    const { view, ignored } = parseView("?provider=oracle&min_savings=-5&min_pct=150&currency=dollars&service=ec2");
    expect(view).toEqual({ accounts: [], service: "ec2" });
    expect(ignored).toHaveLength(4);
    expect(ignored.join(" ")).toMatch(/provider.*min_savings.*currency.*min_pct/);
  });

  it("accepts an upper-case provider and tidies account lists", () => {
    const { view } = parseView("?provider=GCP&accounts=a,%20b,,a");
    expect(view).toEqual({ provider: "gcp", accounts: ["a", "b"] });
  });

  it("rejects a percentage written as something other than a decimal", () => {
    for (const bad of ["1e2", "-1", "abc", "100.5"]) {
      expect(parseView(`?min_pct=${encodeURIComponent(bad)}`).view.minPct, bad).toBeUndefined();
    }
    expect(parseView("?min_pct=100").view.minPct).toBe("100");
  });

  it("drops the page when filters change", () => {
    expect(withoutPage({ accounts: [], provider: "aws", page: "x" })).toEqual({ accounts: [], provider: "aws" });
  });
});
