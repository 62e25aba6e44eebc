// The local OpenID provider itself, before any page uses it: its access
// tokens are JWTs for the API's audience with the user's permissions, and an
// api-service configured from its discovery document accepts them (and
// refuses callers without one).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CLIENT_ID, startProvider } from '../lib/oidc.mjs';
import { jwtClaims, signIn } from '../lib/oidc-flow.mjs';
import { apiService, cudlyctl, freePort } from '../lib/services.mjs';

let provider;
let api;

before(async () => {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  provider = await startProvider({ consoleOrigin: origin });
  api = await apiService({
    name: 'api-provider-check',
    port,
    env: {
      CUDLY_AUTH_DISABLED: undefined,
      CUDLY_JWT_ISSUER: provider.issuer,
      CUDLY_JWT_AUDIENCE: provider.resource,
      CUDLY_CONSOLE_OIDC_CLIENT_ID: CLIENT_ID,
      CUDLY_CONSOLE_OIDC_RESOURCE: provider.resource,
    },
  });
});

after(async () => {
  await api?.stop();
  await provider?.close();
});

const tokenFor = (user) => signIn({
  issuer: provider.issuer, clientId: CLIENT_ID, redirectUri: `${api.url}/auth/callback`,
  resource: provider.resource, user,
});

test('the provider issues RS256 JWT access tokens for the API with the user permissions', async () => {
  const { access_token: token } = await tokenFor('admin');
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));
  assert.equal(header.alg, 'RS256');
  const claims = jwtClaims(token);
  assert.equal(claims.iss, provider.issuer);
  assert.equal(claims.aud, provider.resource);
  assert.deepEqual(claims.permissions, ['recommendations:view', 'accounts:admin']);
});

test('api-service accepts the provider tokens and refuses calls without one', async () => {
  await assert.rejects(cudlyctl(['freshness'], { api: api.url }), /UNAUTHENTICATED/);
  const viewer = (await tokenFor('viewer')).access_token;
  const [freshness] = await cudlyctl(['freshness'], { api: api.url, token: viewer });
  assert.ok(freshness.version, 'a viewer reads freshness');
  await assert.rejects(cudlyctl(['accounts', 'list'], { api: api.url, token: viewer }), /PERMISSION_DENIED/);
  const admin = (await tokenFor('admin')).access_token;
  const [accounts] = await cudlyctl(['accounts', 'list'], { api: api.url, token: admin });
  assert.ok(Array.isArray(accounts.accounts), 'an admin lists accounts');
});
