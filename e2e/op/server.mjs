// A real OpenID Provider (the npm package oidc-provider) for flaat-extauthz end-to-end tests.
// TEST ONLY: fixed client secrets, in-memory storage, plain HTTP on loopback.
//
// Usage: node server.mjs [--port N]        (default 0: the kernel picks a free port)
//
// It listens on 127.0.0.1 first and only then builds the provider, so the issuer URL carries
// the real port and there is no free-port race. When it is ready it prints ONE line to stdout:
//
//   E2E-OP-READY {"issuer":"http://127.0.0.1:PORT","port":PORT,"resource":"…","clients":{…},"accounts":[…]}
//
// What it issues:
//   - client_credentials (client_secret_basic):
//       * with `resource=<RESOURCE>`: an RS256 JWT access token (aud = RESOURCE) whose
//         extra claims (`groups`, `eduperson_entitlement`) depend on the client
//         (e2e-admin: admins+users, e2e-user: users);
//       * without `resource`: an opaque access token (introspectable, not usable at userinfo).
//   - grant_type=urn:flaat-extauthz:e2e:mint (a test-only grant, client_secret_basic) with
//     `account=alice|bob` and optional `format=jwt|opaque` (default opaque), and with a DPoP
//     header bound to its key like any other grant: an access token
//     bound to that account with scope "openid email profile groups eduperson_entitlement".
//     Opaque ones work at userinfo and introspection; JWT ones (aud = RESOURCE) carry the
//     account's groups/entitlements as claims but are refused by userinfo (oidc-provider does
//     that for any token with an audience), which is why flaat-extauthz has userinfo: optional.
//     A real deployment would use the authorization-code flow; the custom grant only skips
//     the browser login, the tokens are the provider's own.
//   - userinfo, RFC 7662 introspection (client_secret_basic, any confidential client),
//     RFC 7009 revocation (by the client that obtained the token).
//   - sender-constrained tokens: a token request with a DPoP proof (RFC 9449, features.dPoP)
//     gets a DPoP-bound token (cnf.jkt in the JWT and in introspection), also from the mint
//     grant; client e2e-mtls (tls_client_certificate_bound_access_tokens) gets
//     certificate-bound tokens
//     (cnf["x5t#S256"], RFC 8705). TEST ONLY: the "client certificate" is read from the
//     request header X-E2E-Client-Cert (URL-encoded PEM) since the OP speaks plain HTTP;
//     a real OP takes it from its TLS connection.
//   - OIDC Back-Channel Logout 1.0 (features.backchannelLogout) with open dynamic client
//     registration (features.registration, to register a relying party whose
//     backchannel_logout_uri is only known once flaat-extauthz runs) and the development
//     login/consent pages (features.devInteractions) to script a session; RP-initiated
//     logout (/session/end) then posts logout tokens and revokes the session's grants.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';
// The mint grant binds its tokens to a DPoP proof with the provider's own helpers (the
// ones its client_credentials grant uses), pinned with the package version.
import validateDpop from 'oidc-provider/lib/helpers/validate_dpop.js';
import { applyDpopBinding } from 'oidc-provider/lib/helpers/grant_common.js';
import { checkMtlsCert } from 'oidc-provider/lib/helpers/sender_constraints.js';

export const RESOURCE = 'https://api.e2e.test';
export const MINT_GRANT = 'urn:flaat-extauthz:e2e:mint';

const ENTITLEMENT = 'urn:mace:egi.eu:group:e2e:role=member#aai.e2e.test';

// Accounts known to findAccount: the claims userinfo returns (and that minted JWTs carry).
const ACCOUNTS = {
  alice: {
    sub: 'alice',
    email: 'alice@e2e.test',
    email_verified: true,
    name: 'Alice Admin',
    preferred_username: 'alice',
    groups: ['admins', 'users'],
    eduperson_entitlement: [ENTITLEMENT],
  },
  bob: {
    sub: 'bob',
    email: 'bob@e2e.test',
    email_verified: true,
    name: 'Bob User',
    preferred_username: 'bob',
    groups: ['users'],
    eduperson_entitlement: [],
  },
};

// Extra claims of client_credentials tokens, by client.
const CLIENT_CLAIMS = {
  'e2e-admin': { groups: ['admins', 'users'], eduperson_entitlement: [ENTITLEMENT] },
  'e2e-user': { groups: ['users'], eduperson_entitlement: [] },
};

const SCOPE = 'openid email profile groups eduperson_entitlement';

const CLIENTS = {
  'e2e-admin': 'e2e-admin-secret',
  'e2e-user': 'e2e-user-secret',
  // Used by flaat-extauthz for introspection only.
  'flaat-extauthz': 'flaat-extauthz-secret',
  // Gets certificate-bound access tokens (tls_client_certificate_bound_access_tokens).
  'e2e-mtls': 'e2e-mtls-secret',
};

function argPort() {
  const i = process.argv.indexOf('--port');
  const raw = i >= 0 ? process.argv[i + 1] : (process.env.E2E_OP_PORT ?? '0');
  const port = Number.parseInt(raw, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`e2e-op: invalid port ${raw}`);
  }
  return port;
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `e2e-${randomUUID()}`, alg: 'RS256', use: 'sig' };
}

function configuration() {
  return {
    clients: Object.entries(CLIENTS).map(([id, secret]) => ({
      client_id: id,
      client_secret: secret,
      grant_types: id === 'flaat-extauthz' ? ['client_credentials'] : ['client_credentials', MINT_GRANT],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
      ...(id === 'e2e-mtls' ? { tls_client_certificate_bound_access_tokens: true } : {}),
    })),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomUUID()] },
    scopes: ['openid', 'email', 'profile', 'groups', 'eduperson_entitlement'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
      eduperson_entitlement: ['eduperson_entitlement'],
    },
    async findAccount(_ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { ...account }; } };
    },
    async extraTokenClaims(_ctx, token) {
      if (token.accountId) {
        const a = ACCOUNTS[token.accountId];
        return a ? { groups: a.groups, eduperson_entitlement: a.eduperson_entitlement, email: a.email } : undefined;
      }
      return CLIENT_CLAIMS[token.clientId];
    },
    enabledJWA: {
      dPoPSigningAlgValues: ['ES256', 'RS256', 'PS256', 'EdDSA'],
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      backchannelLogout: { enabled: true },
      dPoP: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const pem = ctx.get('x-e2e-client-cert');
          return pem ? decodeURIComponent(pem) : undefined;
        },
      },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return resourceServerInfo();
        },
      },
    },
    ttl: {
      AccessToken: 600,
      ClientCredentials: 600,
      Grant: 3600,
    },
    // TEST ONLY: oidc-provider refuses outgoing requests to special-use addresses (SSRF
    // protection); the back-channel logout receiver under test listens on loopback, so
    // requests to 127.0.0.1 go without that dispatcher. Everything else keeps it.
    fetch(url, options) {
      if (new URL(url).hostname === '127.0.0.1') {
        delete options.dispatcher;
      }
      return globalThis.fetch(url, options);
    },
    renderError(ctx, out) {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  };
}

function resourceServerInfo() {
  return {
    scope: SCOPE,
    audience: RESOURCE,
    accessTokenTTL: 600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

// The test-only grant: an account-bound access token without a browser login.
function registerMintGrant(provider) {
  provider.registerGrantType(MINT_GRANT, async (ctx) => {
    const { client, params } = ctx.oidc;
    const accountId = params.account;
    if (!accountId || !ACCOUNTS[accountId]) {
      throw new errors.InvalidGrant('unknown account');
    }
    const format = params.format || 'opaque';
    if (format !== 'opaque' && format !== 'jwt') {
      throw new errors.InvalidRequest('format must be opaque or jwt');
    }
    const dPoP = await validateDpop(provider, ctx);
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope(SCOPE);
    if (format === 'jwt') grant.addResourceScope(RESOURCE, SCOPE);
    const grantId = await grant.save();

    const at = new provider.AccessToken({
      accountId, client, grantId, gty: MINT_GRANT, scope: SCOPE,
    });
    if (format === 'jwt') {
      at.resourceServer = new provider.ResourceServer(RESOURCE, resourceServerInfo());
    }
    await applyDpopBinding(provider, ctx, dPoP, at); // a DPoP header binds the token (cnf.jkt)
    const cert = checkMtlsCert(provider, ctx); // client e2e-mtls: bound to its certificate
    if (cert) at.setThumbprint('x5t', cert);
    ctx.oidc.entity('AccessToken', at);
    const value = await at.save();
    ctx.body = {
      access_token: value,
      token_type: at.tokenType,
      expires_in: at.expiration,
      scope: at.scope,
    };
  }, ['account', 'format', 'scope']);
}

const server = http.createServer();
server.listen(argPort(), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  registerMintGrant(provider);
  provider.on('server_error', (_ctx, err) => console.error('e2e-op: server_error', err));
  provider.on('backchannel.error', (_ctx, err, client) => console.error('e2e-op: backchannel logout to', client.clientId, 'failed:', err));
  provider.on('backchannel.success', (_ctx, client) => console.error('e2e-op: backchannel logout to', client.clientId, 'sent'));
  server.on('request', provider.callback());
  const ready = {
    issuer,
    port,
    resource: RESOURCE,
    mint_grant: MINT_GRANT,
    clients: CLIENTS,
    accounts: Object.keys(ACCOUNTS),
  };
  process.stdout.write(`E2E-OP-READY ${JSON.stringify(ready)}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
