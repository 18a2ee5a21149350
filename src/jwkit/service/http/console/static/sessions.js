/* Sessions and revocation: find live tokens, revoke them behind a confirmation, watch each
 * revocation propagate. Every change goes through /api/v1 with the session cookie and the
 * X-CSRF-Token header (api.js); text reaches the page through textContent only. */

import { api, confirmDialog, message } from "./api.js";

const root = document.getElementById("sessions");
const projectId = root.dataset.projectId;
const ttl = Number(root.dataset.ttl);
const sync = Number(root.dataset.sync);
const base = `/api/v1/projects/${encodeURIComponent(projectId)}`;
const LABELS = { sub: "user", sid: "session", client_id: "OAuth client", jti: "token" };

function clock(date) {
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function showError(form, text) {
  form.querySelector("[data-error]").textContent = text;
}

async function revoke(kind, value, known, form) {
  const by = new Date(Date.now() + (ttl + sync) * 1000);
  const what = known === undefined
    ? `Every live token of ${LABELS[kind]} “${value}”`
    : `The ${known} live token${known === 1 ? "" : "s"} of ${LABELS[kind]} “${value}”`;
  const body = `${what} will be marked INVALID. This cannot be undone. Verifiers listening to `
    + `this service's events reject ${known === 1 ? "it" : "them"} within a second; every `
    + `verifier that honours the status list's ttl (${ttl} s) by ${clock(by)}.`;
  if (!(await confirmDialog(`Revoke ${LABELS[kind]} ${value}?`, body, "Revoke"))) { return; }
  const result = await api("POST", `${base}/revocations`, { [kind]: value });
  if (!result.ok) { showError(form, message(result)); return; }
  window.location.reload();
}

const findForm = document.getElementById("find-tokens");
let lastSearch = null;
findForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(findForm, "");
  const kind = findForm.elements.kind.value;
  const value = findForm.elements.value.value.trim();
  if (!value) { showError(findForm, "Enter a value to search for."); return; }
  const result = await api("GET", `${base}/tokens?${new URLSearchParams({ [kind]: value })}`);
  if (!result.ok) { showError(findForm, message(result)); return; }
  const tokens = result.data.tokens;
  const live = tokens.filter((t) => t.status !== "invalid").length;
  lastSearch = { kind, value, live };
  const tbody = document.querySelector("#found-table tbody");
  tbody.replaceChildren();
  for (const t of tokens) {
    const row = document.createElement("tr");
    for (const text of [t.sub, t.sid || "—", t.client_id || "—", t.expires_at, t.status]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    tbody.append(row);
  }
  document.getElementById("found-summary").textContent = tokens.length
    ? `${tokens.length} live token${tokens.length === 1 ? "" : "s"}, ${live} not revoked.`
    : "No live tokens match.";
  // (the wrapper: .btn's display rule would override the button's own hidden attribute)
  document.getElementById("revoke-found-wrap").hidden = live === 0;
  document.getElementById("found").hidden = false;
});

document.getElementById("revoke-found").addEventListener("click", () => {
  if (lastSearch) { revoke(lastSearch.kind, lastSearch.value, lastSearch.live, findForm); }
});

const directForm = document.getElementById("revoke-direct");
directForm.addEventListener("submit", (event) => {
  event.preventDefault();
  showError(directForm, "");
  const value = directForm.elements.value.value.trim();
  if (!value) { showError(directForm, "Enter a value to revoke."); return; }
  revoke(directForm.elements.kind.value, value, undefined, directForm);
});

/* How far each revocation has propagated: a countdown to effective_by. */
function tick() {
  for (const el of document.querySelectorAll(".propagation[data-effective-by]")) {
    const left = Math.ceil((new Date(el.dataset.effectiveBy).getTime() - Date.now()) / 1000);
    el.textContent = left <= 0 ? "propagated" : `propagating: every verifier within ${left} s`;
  }
}
tick();
setInterval(tick, 1000);
