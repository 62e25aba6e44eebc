// The authorization code flow with PKCE done from node, the way a browser
// would go through it (redirects, cookies, the development login form): to
// mint real access tokens from the local provider for calls the tests make
// themselves, and to check the provider apart from the console.
import { createHash, randomBytes } from 'node:crypto';

const b64url = (buf) => buf.toString('base64url');

export async function discover(issuer) {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  return res.json();
}

/** Signs `user` in and returns the token response (access_token, id_token, expires_in). */
export async function signIn({ issuer, clientId, redirectUri, resource, user, scope = 'openid profile' }) {
  const meta = await discover(issuer);
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(12));
  const params = new URLSearchParams({
    client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope, state,
    code_challenge: challenge, code_challenge_method: 'S256',
  });
  if (resource) params.set('resource', resource);

  const jar = new Map();
  const request = async (url, init = {}) => {
    const headers = { ...init.headers, cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    const res = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(5000) });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  };

  let url = `${meta.authorization_endpoint}?${params}`;
  let res = await request(url);
  // Bounded walk: authorize → interaction (login form) → resume → callback.
  for (let hop = 0; hop < 10; hop += 1) {
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      if (url.startsWith(redirectUri)) break;
      res = await request(url);
      continue;
    }
    const body = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(body)?.[1];
    if (res.status !== 200 || !action) throw new Error(`unexpected ${res.status} at ${url}: ${body.slice(0, 300)}`);
    const form = /name="login"/.test(body)
      ? new URLSearchParams({ prompt: 'login', login: user, password: 'any' })
      : new URLSearchParams({ prompt: 'consent' });
    url = new URL(action, url).href;
    res = await request(url, { method: 'POST', body: form });
  }
  const back = new URL(url);
  if (!url.startsWith(redirectUri)) throw new Error(`never came back to ${redirectUri}; stopped at ${url}`);
  if (back.searchParams.get('error')) throw new Error(`authorization error: ${back.searchParams.get('error')}: ${back.searchParams.get('error_description')}`);
  if (back.searchParams.get('state') !== state) throw new Error('state mismatch');

  const tokenParams = new URLSearchParams({
    grant_type: 'authorization_code', code: back.searchParams.get('code'), redirect_uri: redirectUri,
    client_id: clientId, code_verifier: verifier,
  });
  if (resource) tokenParams.set('resource', resource);
  const tokenRes = await fetch(meta.token_endpoint, { method: 'POST', body: tokenParams, signal: AbortSignal.timeout(5000) });
  const tokens = await tokenRes.json();
  if (!tokenRes.ok) throw new Error(`token endpoint answered ${tokenRes.status}: ${JSON.stringify(tokens)}`);
  return tokens;
}

/** The claims of a JWT, unverified (the tests check what was issued). */
export function jwtClaims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}
