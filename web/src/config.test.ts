import { describe, expect, it } from "vitest";
import { safeReturnPath } from "./auth";
import { parseConfig } from "./config";

describe("parseConfig", () => {
  it("reads the three modes", () => {
    expect(parseConfig({ auth: "none" })).toEqual({ auth: "none" });
    expect(parseConfig({ auth: "proxy" })).toEqual({ auth: "proxy" });
    expect(
      parseConfig({ auth: "oidc", oidc: { issuer: "https://idp.example", clientId: "cudly-console", resource: "https://api" } }),
    ).toEqual({
      auth: "oidc",
      oidc: { issuer: "https://idp.example", clientId: "cudly-console", scopes: "openid profile", resource: "https://api" },
    });
  });

  it("refuses what it cannot sign in with", () => {
    expect(() => parseConfig({ auth: "oidc", oidc: { issuer: "https://idp.example" } })).toThrow(/clientId/);
    expect(() => parseConfig({ auth: "magic" })).toThrow(/unknown auth mode/);
    expect(() => parseConfig(null)).toThrow(/not a JSON object/);
  });
});

describe("safeReturnPath", () => {
  it("returns only to a path of this origin", () => {
    expect(safeReturnPath("/runs?x=1")).toBe("/runs?x=1");
    expect(safeReturnPath("https://evil.example/")).toBe("/");
    expect(safeReturnPath("//evil.example/")).toBe("/");
    expect(safeReturnPath("/auth/callback?code=1")).toBe("/");
    expect(safeReturnPath(undefined)).toBe("/");
  });
});
