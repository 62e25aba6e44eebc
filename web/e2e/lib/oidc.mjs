// A local OpenID provider for the console's sign-in tests: node `oidc-provider`
// with its development login form (any user name, any password), a public
// client for the console (authorization code + PKCE) and JWT access tokens for
// one resource (RFC 8707), RS256, carrying the user's `permissions`.
//
// Users: `viewer` may read; `admin` may also manage accounts; any other name
// gets no permissions.
//
// Run on its own for trying the console by hand:
//   node lib/oidc.mjs --console-origin http://127.0.0.1:8080 [--port 0] [--ttl 300]
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'cudly-console';
export const PERMISSIONS = {
  viewer: ['recommendations:view'],
  admin: ['recommendations:view', 'accounts:admin'],
};

/**
 * Starts the provider on 127.0.0.1 and resolves once it listens.
 *
 * consoleOrigin: the console's origin (redirects and CORS); resource: the
 * audience of access tokens (default: the console origin, i.e. the API);
 * accessTokenTTL: seconds, changeable later through `setAccessTokenTTL`, so
 * the expiry test can shorten it for the tokens issued after.
 */
export async function startProvider({ consoleOrigin, resource = consoleOrigin, port = 0, accessTokenTTL = 300 }) {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${server.address().port}`;
  let ttl = accessTokenTTL;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-rs256', alg: 'RS256', use: 'sig' };

  // The provider warns, rightly, that it runs with its development login form
  // and in-memory storage; here that is the point, so those lines are dropped.
  const warn = console.warn;
  console.warn = (...args) => { if (!String(args[0]).includes('oidc-provider WARNING')) warn(...args); };
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [`${consoleOrigin}/auth/callback`],
      post_logout_redirect_uris: [`${consoleOrigin}/`],
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, name: id, preferred_username: id }),
    }),
    // The console calls the token endpoint from its own origin.
    clientBasedCORS: (_ctx, origin) => origin === consoleOrigin,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== resource) throw new Provider.errors.InvalidTarget();
          return {
            scope: '',
            audience: resource,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => ({ permissions: PERMISSIONS[token.accountId] ?? [] }),
    // First-party console: no consent screen, every request is granted as asked.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      const grant = grantId
        ? await ctx.oidc.provider.Grant.find(grantId)
        : new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
      grant.addResourceScope(resource, '');
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl,
      Session: 3600, Grant: 3600, Interaction: 600, AuthorizationCode: 60, IdToken: 3600,
    },
  });
  console.warn = warn;
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider:', err));
  server.on('request', provider.callback());

  return {
    issuer,
    resource,
    provider,
    setAccessTokenTTL(seconds) { ttl = seconds; },
    async close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      'console-origin': { type: 'string' },
      resource: { type: 'string' },
      port: { type: 'string', default: '0' },
      ttl: { type: 'string', default: '300' },
    },
  });
  if (!values['console-origin']) {
    console.error('usage: node lib/oidc.mjs --console-origin ORIGIN [--resource URI] [--port N] [--ttl SECONDS]');
    process.exit(2);
  }
  const p = await startProvider({
    consoleOrigin: values['console-origin'],
    resource: values.resource,
    port: Number(values.port),
    accessTokenTTL: Number(values.ttl),
  });
  console.log(`issuer ${p.issuer} resource ${p.resource} client ${CLIENT_ID}`);
}
