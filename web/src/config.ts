// /config.json is served by api-service next to the page and says how the
// console signs in. It is fetched before anything else.

/** The OpenID Connect client the console signs in with. */
export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string;
  /** RFC 8707 resource indicator, sent on the authorize and token requests. */
  resource?: string;
}

/** How the console authenticates its calls. */
export type ConsoleConfig =
  | { auth: "none" }
  | { auth: "proxy" }
  | { auth: "oidc"; oidc: OidcSettings };

function isText(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

/** Reads /config.json's content; throws an Error naming what is wrong. */
export function parseConfig(raw: unknown): ConsoleConfig {
  if (typeof raw !== "object" || raw === null) throw new Error("/config.json is not a JSON object");
  const { auth, oidc } = raw as { auth?: unknown; oidc?: Record<string, unknown> };
  if (auth === "none" || auth === "proxy") return { auth };
  if (auth !== "oidc") throw new Error(`/config.json: unknown auth mode ${JSON.stringify(auth)}`);
  if (!oidc || !isText(oidc.issuer) || !isText(oidc.clientId)) {
    throw new Error("/config.json: auth \"oidc\" needs oidc.issuer and oidc.clientId");
  }
  return {
    auth,
    oidc: {
      issuer: oidc.issuer,
      clientId: oidc.clientId,
      scopes: isText(oidc.scopes) ? oidc.scopes : "openid profile",
      resource: isText(oidc.resource) ? oidc.resource : undefined,
    },
  };
}

/** Fetches and reads /config.json (never cached: it is served no-cache). */
export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch("/config.json", { cache: "no-cache", headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`/config.json answered HTTP ${response.status}`);
  return parseConfig(await response.json());
}
