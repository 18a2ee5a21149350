// A DPoP client (RFC 9449) built with oauth4webapi as its docs set it up, on behalf of
// tests/interop/test_dpop_client.py: it gets a DPoP-bound token from a running jwkit key
// service and calls a resource server protected by jwkit's DPoPVerifier.
//
// Usage: node dpop_client.mjs <npm prefix with oauth4webapi@3>
// stdin:  {"issuer", "client_id", "client_secret", "resource", "nonce_resource"}
// stdout: {"ok": true, "jwk", "token_response", "calls": {name: {status, body, challenges}}}
//         or {"ok": false, "error", "message"}
//
// oauth4webapi: discoveryRequest (RFC 8414, algorithm "oauth2"), DPoP() with a fresh ES256
// key pair, clientCredentialsGrantRequest with that DPoP handle, then protectedResourceRequest
// with the handle (its proofs carry ath), with a thief's handle, and as a plain bearer call.
// The server speaks plain http on 127.0.0.1: allowInsecureRequests is set, and only that.

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const prefix = process.argv[2];
const require = createRequire(join(resolve(prefix), "package.json"));
const oauth = await import(pathToFileURL(require.resolve("oauth4webapi")).href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const insecure = { [oauth.allowInsecureRequests]: true };

async function call(url, token, DPoP) {
  const options = DPoP ? { ...insecure, DPoP } : insecure;
  try {
    const response = await oauth.protectedResourceRequest(
      token, "GET", new URL(url), new Headers(), null, options,
    );
    return { status: response.status, body: await response.json(), challenges: [] };
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      return { status: err.status, body: null, challenges: err.cause, nonce_error: oauth.isDPoPNonceError(err) };
    }
    throw err;
  }
}

try {
  const issuer = new URL(req.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer, await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }),
  );
  const client = { client_id: req.client_id };
  const keyPair = await oauth.generateKeyPair("ES256");
  const DPoP = oauth.DPoP(client, keyPair);
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, oauth.ClientSecretBasic(req.client_secret), { scope: "read" },
    { ...insecure, DPoP },
  );
  const tokens = await oauth.processClientCredentialsResponse(as, client, response);
  const calls = {};
  calls.dpop = await call(req.resource, tokens.access_token, DPoP);
  calls.dpop_again = await call(req.resource, tokens.access_token, DPoP);
  const thief = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
  calls.thief = await call(req.resource, tokens.access_token, thief);
  calls.bearer = await call(req.resource, tokens.access_token, null);
  // A resource that wants server nonces: the first call is told use_dpop_nonce, the handle
  // keeps the DPoP-Nonce it was sent, and the retry (as the library's docs do it) passes.
  calls.nonce_first = await call(req.nonce_resource, tokens.access_token, DPoP);
  calls.nonce_retry = await call(req.nonce_resource, tokens.access_token, DPoP);
  const jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
  console.log(JSON.stringify({ ok: true, jwk, token_response: tokens, calls }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: err?.code ?? err?.name, message: String(err?.message ?? err) }));
}
