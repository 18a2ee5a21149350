// A client and a resource server, as their own docs set them up, against a running jwkit
// key service, on behalf of tests/interop/test_oauth_clients.py.
//
// Usage: node oauth_client.mjs <npm prefix with openid-client@6 and jose@6>
// stdin:  {"issuer", "client_id", "client_secret", "auth": "basic"|"post", "scope", "audience"}
// stdout: {"ok": true, "metadata": {...}, "token_response": {...}, "header": {...},
//          "payload": {...}} or {"ok": false, "error", "message"}
//
// openid-client: discovery() with algorithm "oauth2" (RFC 8414 well-known URL for an issuer
// with a path), then clientCredentialsGrant(). jose: createRemoteJWKSet() on the discovered
// jwks_uri and jwtVerify() with typ "at+jwt" and the claims RFC 9068 §2.2 requires.

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const prefix = process.argv[2];
const require = createRequire(join(resolve(prefix), "package.json"));
const client = await import(pathToFileURL(require.resolve("openid-client")).href);
const jose = await import(pathToFileURL(require.resolve("jose")).href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);

try {
  const auth = req.auth === "basic"
    ? client.ClientSecretBasic(req.client_secret)
    : client.ClientSecretPost(req.client_secret);
  const config = await client.discovery(
    new URL(req.issuer), req.client_id, req.client_secret, auth,
    { algorithm: "oauth2", execute: [client.allowInsecureRequests] },  // a local http server
  );
  const metadata = config.serverMetadata();
  const params = req.scope ? { scope: req.scope } : {};
  const tokens = await client.clientCredentialsGrant(config, params);
  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
  const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer: metadata.issuer,
    audience: req.audience,
    typ: "at+jwt",
    requiredClaims: ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"],
  });
  process.stdout.write(JSON.stringify({
    ok: true, metadata, token_response: { ...tokens }, header: protectedHeader, payload,
  }));
} catch (err) {
  process.stdout.write(JSON.stringify({
    ok: false, error: err.code || err.name, message: String(err.message || err),
    cause: err.cause ? String(err.cause.message || err.cause) : undefined,
  }));
}
