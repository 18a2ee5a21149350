/* Sessions and revocation: find live tokens, revoke them behind a confirmation, watch each
 * revocation propagate. Every change goes through /api/v1 with the session cookie and the
 * X-CSRF-Token header; text reaches the page through textContent only. */

const root = document.getElementById("sessions");
const projectId = root.dataset.projectId;
const ttl = Number(root.dataset.ttl);
const sync = Number(root.dataset.sync);
const base = `/api/v1/projects/${encodeURIComponent(projectId)}`;
const LABELS = { sub: "user", sid: "session", client_id: "OAuth client", jti: "token" };

function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

async function api(method, path, body) {
  const headers = { Accept: "application/json", "X-CSRF-Token": csrf() };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const resp = await fetch(path, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    return { ok: resp.ok, status: resp.status, data };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

function message(result) {
  if (result.status === 0) { return "The key service could not be reached."; }
  const data = result.data || {};
  if (Array.isArray(data.detail) && data.detail.length) { return data.detail[0].msg; }
  return data.message || `The request failed (${result.status}).`;
}

function clock(date) {
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/* The shared confirmation dialog (templates/_confirm.html): title, body, OK label. */
function confirmDialog(title, body, ok) {
  const dialog = document.getElementById("confirm-dialog");
  const okBtn = document.getElementById("confirm-ok");
  const cancelBtn = dialog.querySelector('[data-confirm="cancel"]');
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").textContent = body;
  document.getElementById("confirm-typed").hidden = true;
  document.getElementById("confirm-check").hidden = true;
  okBtn.textContent = ok;
  okBtn.className = "btn btn-danger";
  okBtn.disabled = false;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const finish = (value) => {
      okBtn.removeEventListener("click", onOk);
      cancelBtn.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onCancel);
      if (dialog.open) { dialog.close(); }
      if (opener && opener.focus) { opener.focus(); }
      resolve(value);
    };
    const onOk = () => finish(true);
    const onCancel = () => finish(false);
    okBtn.addEventListener("click", onOk);
    cancelBtn.addEventListener("click", onCancel);
    dialog.addEventListener("close", onCancel);
    dialog.showModal();
    cancelBtn.focus();
  });
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
