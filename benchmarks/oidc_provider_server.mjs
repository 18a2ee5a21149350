// The oidc-provider side of benchmarks/server.py.
//
//   OIDC_PROVIDER_ENTRY=.../oidc-provider/lib/index.js OIDC_BENCH_CLIENT_SECRET=... \
//   [OIDC_BENCH_WORKERS=1] node benchmarks/oidc_provider_server.mjs PORT CLIENT_ID RESOURCE
//
// The package is loaded from OIDC_PROVIDER_ENTRY because it is installed under
// benchmarks/.work/node, which ESM bare imports do not search. Signing: two fresh EC P-256
// private keys (ES256), so the JWKS has the shape of jwkit's (an active and a next key).
// One client: client_credentials grant, client_secret_basic, scope "read". RESOURCE is the
// default resource indicator of every token request, and its resource server asks for RFC 9068
// JWT access tokens, so POST /token signs a JWT (not an opaque, stored reference token).
// JWKS: GET /jwks. With OIDC_BENCH_WORKERS > 1, node:cluster runs that many processes sharing
// the port and the keys.

import cluster from 'node:cluster';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const [port, clientId, resource] = process.argv.slice(2);
const clientSecret = process.env.OIDC_BENCH_CLIENT_SECRET;
const entry = process.env.OIDC_PROVIDER_ENTRY;
const workers = Number(process.env.OIDC_BENCH_WORKERS || '1');
if (!port || !clientId || !resource || !clientSecret || !entry) {
  console.error('usage: OIDC_PROVIDER_ENTRY=... OIDC_BENCH_CLIENT_SECRET=... '
    + 'oidc_provider_server.mjs PORT CLIENT_ID RESOURCE');
  process.exit(2);
}

function newKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };
}

if (workers > 1 && cluster.isPrimary) {
  const shared = {
    OIDC_BENCH_JWKS: JSON.stringify({ keys: [newKey(), newKey()] }),
    OIDC_BENCH_COOKIE_KEY: randomUUID(),
  };
  for (let i = 0; i < workers; i += 1) cluster.fork(shared);
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { default: Provider, errors } = await import(pathToFileURL(entry).href);
  const jwks = process.env.OIDC_BENCH_JWKS
    ? JSON.parse(process.env.OIDC_BENCH_JWKS)
    : { keys: [newKey(), newKey()] };

  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    jwks,
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'read',
      },
    ],
    scopes: ['openid', 'read'],
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    cookies: { keys: [process.env.OIDC_BENCH_COOKIE_KEY || randomUUID()] },
    ttl: { ClientCredentials: 900 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: 'read',
            audience: resource,
            accessTokenTTL: 900,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });

  const server = provider.listen(Number(port), '127.0.0.1', () => {
    console.log(`oidc-provider listening on ${issuer} (pid ${process.pid})`);
  });
  const stop = () => {
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
