/* Shared by the page modules: the admin API with the session cookie and X-CSRF-Token, its
 * refusals in words, and the confirmation dialog (templates/_confirm.html). Text reaches the
 * page through textContent only. */

function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

export async function api(method, path, body) {
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

export function message(result) {
  if (result.status === 0) { return "The key service could not be reached."; }
  const data = result.data || {};
  if (Array.isArray(data.detail) && data.detail.length) { return data.detail[0].msg; }
  return data.message || `The request failed (${result.status}).`;
}

export function confirmDialog(title, body, ok) {
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

/* Reload the page; console.js shows `text` as a toast once it is back. */
export function reloadWith(text) {
  try { window.sessionStorage.setItem("jwkit-flash", text); } catch { /* private mode */ }
  window.location.reload();
}
