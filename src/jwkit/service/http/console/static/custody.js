/* Keys page: import your own key, publish and remove foreign keys (templates/_custody.html).
 * The private key and its passphrase go to the API once and are cleared from the form; no
 * answer ever carries them back. */

import { api, confirmDialog, message, reloadWith } from "./api.js";

const root = document.getElementById("custody");
const base = `/api/v1/projects/${encodeURIComponent(root.dataset.projectId)}`;

function showError(form, text) {
  form.querySelector("[data-error]").textContent = text;
}

function busy(form, on) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

const importForm = document.getElementById("import-key");
importForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(importForm, "");
  const text = importForm.elements.key.value.trim();
  if (!text) { showError(importForm, "Paste a private key (PEM or JWK)."); return; }
  const body = {};
  if (text.startsWith("{")) {
    try { body.jwk = JSON.parse(text); } catch {
      showError(importForm, "The key starts with { but is not valid JSON."); return;
    }
  } else {
    body.pem = text;
    const passphrase = importForm.elements.passphrase.value;
    if (passphrase) { body.passphrase = passphrase; }
  }
  const kid = importForm.elements.kid.value.trim();
  if (kid) { body.kid = kid; }
  busy(importForm, true);
  const result = await api("POST", `${base}/keys/import`, body);
  busy(importForm, false);
  if (!result.ok) { showError(importForm, message(result)); return; }
  importForm.reset();
  reloadWith(`Key ${result.data.kid} imported as the next key`);
});

/* A datetime-local value (the browser's local time) as RFC 3339 UTC. */
function untilValue(input) {
  if (!input.value) { return null; }
  const when = new Date(input.value);
  return Number.isNaN(when.getTime()) ? null : when.toISOString().replace(/\.\d{3}Z$/, "Z");
}

const foreignForm = document.getElementById("add-foreign");
foreignForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(foreignForm, "");
  const url = foreignForm.elements.url.value.trim();
  const pasted = foreignForm.elements.jwks.value.trim();
  if (Boolean(url) === Boolean(pasted)) {
    showError(foreignForm, "Give either a JWKS URL or a pasted JWK Set.");
    return;
  }
  const until = untilValue(foreignForm.elements.until);
  if (!until) { showError(foreignForm, "Choose until when the keys are published."); return; }
  const body = { until };
  if (url) {
    body.url = url;
  } else {
    try { body.jwks = JSON.parse(pasted); } catch {
      showError(foreignForm, "The JWK Set is not valid JSON."); return;
    }
  }
  busy(foreignForm, true);
  const result = await api("POST", `${base}/foreign-keys`, body);
  busy(foreignForm, false);
  if (!result.ok) { showError(foreignForm, message(result)); return; }
  const kids = result.data.foreign_keys.map((k) => k.kid).join(", ");
  reloadWith(`Published foreign key${result.data.foreign_keys.length === 1 ? "" : "s"} ${kids}`);
});

document.querySelectorAll("[data-remove-foreign]").forEach((button) => {
  button.addEventListener("click", async () => {
    const kid = button.dataset.removeForeign;
    const ok = await confirmDialog(
      `Remove foreign key ${kid}?`,
      "It leaves this project's JWKS now: tokens of the old issuer signed by it stop "
        + "verifying once verifiers refresh their cached JWKS.",
      "Remove",
    );
    if (!ok) { return; }
    const result = await api("DELETE", `${base}/foreign-keys/${encodeURIComponent(kid)}`);
    if (!result.ok) { showError(foreignForm, message(result)); return; }
    reloadWith(`Foreign key ${kid} removed`);
  });
});
