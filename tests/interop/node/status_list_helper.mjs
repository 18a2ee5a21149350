// Token Status Lists through @sd-jwt/jwt-status-list (pako's zlib, not Python's), and
// Status List Tokens signed with Node's `jose`, for tests/interop/test_status_list_node.py.
//
// Usage: node status_list_helper.mjs <npm prefix that holds node_modules>
// stdin:  {"ops": [{"op": ..., ...}, ...]}
// stdout: {"results": [...]}, one per op. A failing op yields {"ok": false, "message"}.
//
// Statuses travel as [[index, value], ...] of the non-zero entries (lists are large).
//
// Ops:
//   encode       {bits, size, statuses}          -> {ok, lst}
//   decode       {bits, lst}                     -> {ok, size, statuses}
//   decode_token {token}                         -> {ok, bits, size, statuses}  (unverified)
//   sign_token   {bits, size, statuses, payload, jwk, alg, kid}
//                                                -> {ok, token}  (createHeaderAndPayload +
//                                                   jose SignJWT)

import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const prefix = process.argv[2];
if (!prefix) {
  process.stderr.write("usage: node status_list_helper.mjs <npm prefix>\n");
  process.exit(2);
}
const require = createRequire(join(resolve(prefix), "package.json"));
const sl = await import(pathToFileURL(require.resolve("@sd-jwt/jwt-status-list")).href);
const jose = await import(pathToFileURL(require.resolve("jose")).href);

function build(bits, size, statuses) {
  const values = new Array(size).fill(0);
  for (const [index, value] of statuses) values[index] = value;
  return new sl.StatusList(values, bits);
}

function nonZero(list) {
  const values = list.statusList;
  const out = [];
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) out.push([i, values[i]]);
  return { size: values.length, statuses: out };
}

async function run(op) {
  switch (op.op) {
    case "encode":
      return { lst: build(op.bits, op.size, op.statuses).compressStatusList() };
    case "decode":
      return nonZero(sl.StatusList.decompressStatusList(op.lst, op.bits));
    case "decode_token": {
      const list = sl.getListFromStatusListJWT(op.token);
      return { bits: list.getBitsPerStatus(), ...nonZero(list) };
    }
    case "sign_token": {
      const list = build(op.bits, op.size, op.statuses);
      const { header, payload } = sl.createHeaderAndPayload(list, op.payload, {
        alg: op.alg,
        typ: "statuslist+jwt",
        kid: op.kid,
      });
      const key = await jose.importJWK(op.jwk, op.alg);
      const token = await new jose.SignJWT(payload).setProtectedHeader(header).sign(key);
      return { token };
    }
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const op of JSON.parse(input).ops) {
  try {
    results.push({ ok: true, ...(await run(op)) });
  } catch (error) {
    results.push({ ok: false, message: String(error && error.message ? error.message : error) });
  }
}
process.stdout.write(JSON.stringify({ results }));
