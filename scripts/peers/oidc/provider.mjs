// The tests' OpenID Provider: panva's oidc-provider (OpenID Certified), on loopback, as a hospital's would be.
//
//   node provider.mjs <port> <config.json>
//
// config.json: {"gateway_redirect": "http://127.0.0.1:PORT/ui/callback", "audience": "urn:cxr-serve",
//               "accounts": {"dr.chen": {"name": "Dr. Chen", "roles": ["radiologist"], "sites": [...]}, ...},
//               "services": {"batch-job": {"secret": "...", "roles": ["cxr-analyze"], "ttl": 600}}}
// The web page's client is "cxr-serve-ui" (public, authorization code with PKCE S256); each service is a
// confidential client for client_credentials. Access tokens for the audience are JWTs (RFC 9068) carrying
// preferred_username and roles (and an account's `sites`, when it has them: a study-level restriction's claim).
// The login form is oidc-provider's own development interaction (any password);
// prints "LISTENING <issuer>" when it serves.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

const services = Object.entries(config.services ?? {}).map(([clientId, service]) => ({
  client_id: clientId,
  client_secret: service.secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
}));

function claimsOf(accountId) {
  const account = config.accounts[accountId] ?? { name: accountId, roles: [] };
  return { sub: accountId, preferred_username: accountId, name: account.name, roles: account.roles };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'cxr-serve-ui',
      token_endpoint_auth_method: 'none',
      redirect_uris: [config.gateway_redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    ...services,
  ],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], roles: ['roles'] },
  scopes: ['openid', 'profile', 'roles'],
  findAccount: async (ctx, accountId) => ({ accountId, claims: async () => claimsOf(accountId) }),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== config.audience && resource !== 'urn:another-service') {
          throw new Error(`unknown resource ${resource}`);
        }
        return { scope: 'openid profile roles', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  extraTokenClaims: async (ctx, token) => {
    if (token.accountId) {
      const { preferred_username, name, roles } = claimsOf(token.accountId);
      const sites = config.accounts[token.accountId]?.sites;
      return sites ? { preferred_username, name, roles, sites } : { preferred_username, name, roles };
    }
    const service = config.services?.[token.clientId];
    return service ? { preferred_username: token.clientId, roles: service.roles } : {};
  },
  ttl: {
    ClientCredentials: (ctx, token, client) => config.services?.[client.clientId]?.ttl ?? 600,
    AccessToken: 600,
  },
  loadExistingGrant: async (ctx) => {
    // The hospital's clients are its own: no consent screen; the grant covers what was asked.
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile roles');
    grant.addResourceScope(config.audience, 'openid profile roles');
    await grant.save();
    return grant;
  },
});

provider.listen(Number(port), '127.0.0.1', () => console.log(`LISTENING ${issuer}`));
