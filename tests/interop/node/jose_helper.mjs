// Signs and verifies with Node's `jose` package on behalf of tests/interop/test_node_jose.py.
//
// Usage: node jose_helper.mjs <npm prefix that holds node_modules/jose>
// stdin:  {"ops": [{"op": ..., ...}, ...]}
// stdout: {"results": [...]}, one result per op, in order. A failing op yields
//         {"ok": false, "error": <jose error code or name>, "message": ...}; the process
//         itself exits non-zero only if the input cannot be read.
//
// Ops:
//   generate    {alg}                        -> {ok, private_jwk, public_jwk}  (oct: both the secret)
//   sign_jwt    {alg, jwk, claims, header?}  -> {ok, token}
//   verify_jwt  {alg, jwk, token}            -> {ok, header, payload}
//   sign_jws    {alg, jwk, payload_b64u}     -> {ok, token}
//   verify_jws  {alg, jwk, token}            -> {ok, header, payload_b64u}
//   verify_jwt_jwks {algs, jwks, token}      -> {ok, header, payload}  (key picked by jose's
//                                               createLocalJWKSet: kid, kty, alg, use, crv)

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const prefix = process.argv[2];
if (!prefix) {
  process.stderr.write("usage: node jose_helper.mjs <npm prefix>\n");
  process.exit(2);
}
const require = createRequire(join(resolve(prefix), "package.json"));
const jose = await import(pathToFileURL(require.resolve("jose")).href);

const OKP_ALGS = new Set(["EdDSA", "Ed25519"]);

async function generate({ alg }) {
  if (alg.startsWith("HS")) {
    const secret = await jose.generateSecret(alg, { extractable: true });
    const jwk = { ...(await jose.exportJWK(secret)), alg };
    return { private_jwk: jwk, public_jwk: jwk };
  }
  const options = { extractable: true };
  if (OKP_ALGS.has(alg)) options.crv = "Ed25519";
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, options);
  return {
    private_jwk: { ...(await jose.exportJWK(privateKey)), alg },
    public_jwk: { ...(await jose.exportJWK(publicKey)), alg },
  };
}

async function signJwt({ alg, jwk, claims, header }) {
  const key = await jose.importJWK(jwk, alg);
  const token = await new jose.SignJWT(claims)
    .setProtectedHeader({ ...(header || {}), alg })
    .sign(key);
  return { token };
}

async function verifyJwt({ alg, jwk, token }) {
  const key = await jose.importJWK(jwk, alg);
  const { payload, protectedHeader } = await jose.jwtVerify(token, key, { algorithms: [alg] });
  return { header: protectedHeader, payload };
}

async function signJws({ alg, jwk, payload_b64u }) {
  const key = await jose.importJWK(jwk, alg);
  const token = await new jose.CompactSign(jose.base64url.decode(payload_b64u))
    .setProtectedHeader({ alg })
    .sign(key);
  return { token };
}

async function verifyJws({ alg, jwk, token }) {
  const key = await jose.importJWK(jwk, alg);
  const { payload, protectedHeader } = await jose.compactVerify(token, key, { algorithms: [alg] });
  return { header: protectedHeader, payload_b64u: jose.base64url.encode(payload) };
}

async function verifyJwtJwks({ algs, jwks, token }) {
  const keySet = jose.createLocalJWKSet(jwks);
  const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, { algorithms: algs });
  return { header: protectedHeader, payload };
}

const OPS = {
  generate,
  sign_jwt: signJwt,
  verify_jwt: verifyJwt,
  sign_jws: signJws,
  verify_jws: verifyJws,
  verify_jwt_jwks: verifyJwtJwks,
};

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const request = JSON.parse(await readStdin());
const results = [];
for (const op of request.ops) {
  const run = OPS[op.op];
  if (!run) {
    results.push({ ok: false, error: "UNKNOWN_OP", message: String(op.op) });
    continue;
  }
  try {
    results.push({ ok: true, ...(await run(op)) });
  } catch (err) {
    results.push({ ok: false, error: err.code || err.name || "Error", message: String(err.message) });
  }
}
process.stdout.write(JSON.stringify({ results }));
