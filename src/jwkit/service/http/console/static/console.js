/* jwkit console: a small script on top of server-rendered pages.
 * Every change goes through the admin JSON API (/api/v1) with the session cookie and the
 * X-CSRF-Token header; pages are re-rendered by the server afterwards. */
(function () {
  "use strict";

  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  function csrfToken() {
    var meta = $('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function api(method, path, body) {
    var headers = { "Accept": "application/json", "X-CSRF-Token": csrfToken() };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: resp.ok, status: resp.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: null };
    });
  }

  /* ---- time ------------------------------------------------------------------------ */
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localString(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }
  function relative(date) {
    var secs = Math.round((date.getTime() - Date.now()) / 1000);
    var units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    for (var i = 0; i < units.length; i++) {
      var size = units[i][1];
      if (Math.abs(secs) >= size || size === 1) {
        var value = Math.round(secs / size);
        if (rtf) { return rtf.format(value, units[i][0]); }
        return value >= 0 ? "in " + value + " " + units[i][0] + "s" : -value + " " + units[i][0] + "s ago";
      }
    }
    return "";
  }
  function describeTime(value) {
    var date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (isNaN(date.getTime())) { return String(value); }
    return localString(date) + " (" + relative(date) + ")";
  }
  function localizeTimes(root) {
    $$("time[data-local]", root).forEach(function (el) {
      var iso = el.getAttribute("datetime");
      if (!iso) { return; }
      var date = new Date(iso);
      if (isNaN(date.getTime())) { return; }
      el.title = iso;
      if (el.closest("td")) { /* tables: the local time, then how long ago on its own line */
        el.textContent = localString(date);
        var rel = document.createElement("span");
        rel.className = "rel";
        rel.textContent = relative(date);
        el.appendChild(rel);
      } else {
        el.textContent = describeTime(iso);
      }
    });
  }

  /* Timeline axis labels in local time, as precise as the axis needs. */
  function localizeTicks() {
    var ticks = $$("text[data-tick]");
    if (ticks.length < 2) { return; }
    var first = new Date(ticks[0].getAttribute("data-tick"));
    var last = new Date(ticks[ticks.length - 1].getAttribute("data-tick"));
    var span = (last.getTime() - first.getTime()) / 1000;
    ticks.forEach(function (el) {
      var d = new Date(el.getAttribute("data-tick"));
      if (isNaN(d.getTime())) { return; }
      var time = pad(d.getHours()) + ":" + pad(d.getMinutes());
      var day = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
      el.textContent = span < 3600 ? time + ":" + pad(d.getSeconds()) : span < 7 * 86400 ? day + " " + time : day;
    });
  }

  /* ---- messages ---------------------------------------------------------------------- */
  var PLAIN = {
    rotation_too_early: "Rotating now could break tokens: the next key has not been published long enough for every verifier's cached key set to contain it.",
    key_still_in_use: "Revoking this key now would break tokens it signed that are still valid.",
    key_is_active: "This key signs tokens right now. Rotate first so another key takes over, or use the emergency path.",
    no_next_key: "There is no pre-published next key to rotate to.",
    confirmation_required: "Replacing the active key invalidates every token it signed; confirm to proceed.",
    csrf_failed: "The request was refused because its security token is missing or wrong. Reload the page and try again.",
    unauthorized: "Your session has ended. Log in again to continue.",
    no_active_key: "This project has no active signing key.",
    no_next_secret: "This shared-secret project has no pre-shared next secret to rotate to. Generate the next secret (Overview, Shared secret), give it to every verifier, then rotate; to swap a leaked secret at once, replace it there."
  };

  function describeError(result) {
    var data = result.data || {};
    if (result.status === 0) { return "The key service could not be reached. Check your connection and try again."; }
    var text = PLAIN[data.error] || data.message || ("The request failed (HTTP " + result.status + ").");
    if (result.status === 422 && Array.isArray(data.detail) && data.detail.length) {
      text = data.detail.map(function (d) {
        var field = Array.isArray(d.loc) ? d.loc.filter(function (p) { return p !== "body"; }).join(".") : "";
        return (field ? field + ": " : "") + d.msg;
      }).join("; ");
    }
    if (data.earliest_safe_at) {
      text += " The earliest safe time is " + describeTime(data.earliest_safe_at) + ".";
    }
    return text;
  }

  function showFormError(form, text) {
    var box = $("[data-error]", form);
    if (box) { box.textContent = text || ""; }
  }

  /* The toast is a popover: shown (again) after a modal opened, it is painted on top of the top
   * layer, above the side panel and dialogs. It lives inside the topmost open modal, since a
   * modal makes everything outside it inert (and a person could not select its text). */
  var toastTimer = null, modals = [];
  function placeToast(el, show) {
    var host = modals.length ? modals[modals.length - 1] : document.body;
    var popover = typeof el.showPopover === "function";
    if (el.parentNode !== host) {
      if (popover && el.matches(":popover-open")) { el.hidePopover(); }
      host.appendChild(el);
    }
    if (popover && show) {
      if (el.matches(":popover-open")) { el.hidePopover(); }
      el.showPopover();
    }
  }
  function toast(text) {
    var el = $("#toast");
    if (!el) { return; }
    el.textContent = text;
    placeToast(el, true);
    el.classList.add("show");
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () {
      el.classList.remove("show");
      if (typeof el.hidePopover === "function" && el.matches(":popover-open")) { el.hidePopover(); }
    }, 4000);
  }

  function reloadWith(message) {
    try { window.sessionStorage.setItem("jwkit-flash", message); } catch (e) { /* ignore */ }
    window.location.reload();
  }

  function go(url, message) {
    try { window.sessionStorage.setItem("jwkit-flash", message); } catch (e) { /* ignore */ }
    window.location.assign(url);
  }

  function busy(button, on) {
    if (!button) { return; }
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  /* ---- dialogs: focus trap, Escape, focus restore -------------------------------------- */
  function focusables(root) {
    return $$('a[href], button, input, select, textarea, pre[tabindex], summary, [tabindex]:not([tabindex="-1"])', root)
      .filter(function (el) { return !el.disabled && !el.hidden && el.offsetParent !== null; });
  }

  function openDialog(dialog, opener, initial) {
    dialog._opener = opener || document.activeElement;
    if (!dialog.open) { dialog.showModal(); modals.push(dialog); }
    var first = initial || focusables(dialog)[0];
    if (first) { first.focus(); }
  }

  function trapFocus(event) {
    var dialog = event.currentTarget;
    if (event.key !== "Tab") { return; }
    var items = focusables(dialog);
    if (!items.length) { event.preventDefault(); return; }
    var first = items[0], last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      event.preventDefault(); last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      event.preventDefault(); first.focus();
    }
  }

  $$("dialog").forEach(function (dialog) {
    dialog.addEventListener("keydown", trapFocus);
    dialog.addEventListener("close", function () {
      modals = modals.filter(function (d) { return d !== dialog; });
      var note = $("#toast");
      if (note && dialog.contains(note)) { placeToast(note, note.classList.contains("show")); }
      var opener = dialog._opener;
      dialog._opener = null;
      if (opener && document.body.contains(opener) && typeof opener.focus === "function") { opener.focus(); }
    });
    $$("[data-close-dialog]", dialog).forEach(function (btn) {
      btn.addEventListener("click", function () { dialog.close(); });
    });
  });

  /* confirm({title, body, ok, danger, typed, check}) -> Promise<boolean> */
  function confirmAction(options) {
    var dialog = $("#confirm-dialog");
    var okBtn = $("#confirm-ok");
    var typedBox = $("#confirm-typed"), typedInput = $("#confirm-typed-input");
    var checkBox = $("#confirm-check"), checkInput = $("#confirm-check-input");
    $("#confirm-title").textContent = options.title;
    $("#confirm-body").textContent = options.body;
    okBtn.textContent = options.ok || "Confirm";
    okBtn.className = "btn " + (options.danger === false ? "btn-primary" : "btn-danger");
    typedBox.hidden = !options.typed;
    checkBox.hidden = !options.check;
    typedInput.value = "";
    checkInput.checked = false;
    $("#confirm-typed-label").textContent = options.typed ? "Type " + options.typed + " to confirm" : "";
    $("#confirm-check-label").textContent = options.check || "";
    function refresh() {
      var ok = true;
      if (options.typed && typedInput.value !== options.typed) { ok = false; }
      if (options.check && !checkInput.checked) { ok = false; }
      okBtn.disabled = !ok;
    }
    refresh();
    return new Promise(function (resolve) {
      var answered = false;
      function finish(value) {
        if (answered) { return; }
        answered = true;
        typedInput.removeEventListener("input", refresh);
        checkInput.removeEventListener("change", refresh);
        okBtn.removeEventListener("click", onOk);
        cancelBtn.removeEventListener("click", onCancel);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) { dialog.close(); }
        resolve(value);
      }
      function onOk() { if (!okBtn.disabled) { finish(true); } }
      function onCancel() { finish(false); }
      function onClose() { finish(false); }
      var cancelBtn = $('[data-confirm="cancel"]', dialog);
      typedInput.addEventListener("input", refresh);
      checkInput.addEventListener("change", refresh);
      okBtn.addEventListener("click", onOk);
      cancelBtn.addEventListener("click", onCancel);
      dialog.addEventListener("close", onClose);
      openDialog(dialog, document.activeElement, options.typed ? typedInput : (options.check ? checkInput : cancelBtn));
    });
  }

  /* ---- clipboard and download ---------------------------------------------------------- */
  function copyText(text, label) {
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "sr-only";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      toast(ok ? (label || "Copied") + " to the clipboard." : "Copy failed: select the text and copy it by hand.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        toast((label || "Copied") + " to the clipboard.");
      }, fallback);
    } else {
      fallback();
    }
  }

  function download(filename, text) {
    var blob = new Blob([text], { type: "application/json" });
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  $$("[data-copy-target]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var target = document.getElementById(btn.getAttribute("data-copy-target"));
      if (target) { copyText(target.textContent, "Copied"); }
    });
  });

  /* ---- project context ----------------------------------------------------------------- */
  var projectEl = $("#project");
  var projectId = projectEl ? projectEl.getAttribute("data-project-id") : null;
  var projectName = projectEl ? projectEl.getAttribute("data-project-name") : null;
  var base = projectId ? "/api/v1/projects/" + encodeURIComponent(projectId) : null;

  function intValue(input) {
    if (!input || input.value.trim() === "") { return null; }
    var n = Number(input.value);
    return Number.isInteger(n) ? n : NaN;
  }

  /* ---- projects ------------------------------------------------------------------------ */
  var createProject = $("#create-project");
  if (createProject) {
    createProject.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = $("#cp-name").value.trim();
      var ttl = intValue($("#cp-ttl"));
      var maxAge = intValue($("#cp-maxage"));
      if (!name) { showFormError(createProject, "Enter a name."); $("#cp-name").focus(); return; }
      if (ttl === null || isNaN(ttl) || ttl < 1) { showFormError(createProject, "Token lifetime must be a whole number of seconds."); $("#cp-ttl").focus(); return; }
      if (maxAge !== null && (isNaN(maxAge) || maxAge < 0)) { showFormError(createProject, "JWKS cache lifetime must be a whole number of seconds."); return; }
      var body = { name: name, algorithm: $("#cp-alg").value, token_ttl: ttl };
      if (maxAge !== null) { body.jwks_max_age = maxAge; }
      var button = $('button[type="submit"]', createProject);
      busy(button, true);
      api("POST", "/api/v1/projects", body).then(function (r) {
        busy(button, false);
        if (!r.ok) { showFormError(createProject, describeError(r)); return; }
        var target = "/console/projects/" + encodeURIComponent(r.data.id);
        if (r.data.secret_jwks) { showProjectSecret(r.data, target); return; }
        go(target, "Project " + r.data.name + " created.");
      });
    });
  }

  function showProjectSecret(project, target) {
    var dialog = $("#project-secret-dialog");
    var text = JSON.stringify(project.secret_jwks, null, 2);
    $("#project-secret-json").textContent = text;
    dialog.addEventListener("close", function () {
      $("#project-secret-json").textContent = "";
      go(target, "Project " + project.name + " created.");
    });
    $("#copy-project-secret").addEventListener("click", function () { copyText(text, "Secret key set copied"); });
    $("#download-project-secret").addEventListener("click", function () { download("secret_jwks.json", text + "\n"); });
    openDialog(dialog, $('button[type="submit"]', createProject), $("#copy-project-secret"));
  }

  var settings = $("#project-settings");
  if (settings) {
    settings.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = $("#ps-name").value.trim();
      var ttl = intValue($("#ps-ttl"));
      if (!name) { showFormError(settings, "Enter a name."); return; }
      if (ttl === null || isNaN(ttl) || ttl < 1) { showFormError(settings, "Token lifetime must be a whole number of seconds."); return; }
      var dpop = $("#ps-dpop");
      var changes = { name: name, token_ttl: ttl };
      if (dpop) { changes.dpop_required = dpop.checked; }
      api("PATCH", base, changes).then(function (r) {
        if (!r.ok) { showFormError(settings, describeError(r)); return; }
        reloadWith("Project saved.");
      });
    });
  }

  var deleteProject = $("#delete-project");
  if (deleteProject) {
    deleteProject.addEventListener("click", function () {
      confirmAction({
        title: "Delete project " + projectName + "?",
        body: "This removes the project, its keys and its clients, and empties its JWKS: verifiers that follow the JWKS URL reject its tokens once their cached key set expires; verifiers holding a downloaded key may keep accepting them until they expire. This cannot be undone.",
        ok: "Delete project",
        typed: projectName
      }).then(function (yes) {
        if (!yes) { return; }
        api("DELETE", base).then(function (r) {
          if (!r.ok) { toast(describeError(r)); return; }
          go("/console/projects", "Project " + projectName + " deleted.");
        });
      });
    });
  }

  /* ---- the JSON Web Key panel ----------------------------------------------------------- */
  var panel = $("#jwk-panel");
  var JWK_ORDER = ["kty", "crv", "x", "y", "n", "e", "alg", "kid", "use"];
  function orderedJwk(jwk) {
    var out = {};
    JWK_ORDER.forEach(function (k) { if (k in jwk) { out[k] = jwk[k]; } });
    Object.keys(jwk).forEach(function (k) { if (!(k in out)) { out[k] = jwk[k]; } });
    return out;
  }
  var shownKey = null, shownName = "public_key.json";
  function showSecret(value, filename, advice) {
    shownKey = JSON.stringify(value, null, 2);
    shownName = filename;
    $("#new-key-json").textContent = shownKey;
    $("#new-key-advice").textContent = advice;
    $("#new-key").hidden = false;
    $("#copy-key").focus();
  }
  function forgetKey() {
    shownKey = null;
    var box = $("#new-key");
    if (box) { box.hidden = true; }
    var pre = $("#new-key-json");
    if (pre) { pre.textContent = ""; }
  }
  if (panel) {
    $("#open-jwk-panel").addEventListener("click", function (event) {
      openDialog(panel, event.currentTarget, $("[data-close-panel]", panel));
    });
    $("[data-close-panel]", panel).addEventListener("click", function () { panel.close(); });
    panel.addEventListener("close", forgetKey);
    panel.addEventListener("click", function (event) {
      if (event.target === panel) { panel.close(); } /* click on the backdrop */
    });
    var generate = $("#generate-key");
    if (generate) {
      generate.addEventListener("click", function () {
        var latest = $("#latest-key");
        var hasKey = latest.getAttribute("data-has-key") === "true";
        var ask = hasKey ? confirmAction({
          title: "Invalidate the current key?",
          body: "The new key signs from now on and the previous one (" + $("#latest-kid").textContent +
            ") leaves the JWKS at once. Verifiers that follow the JWKS URL reject its tokens once their cached key set expires; " +
            "a verifier holding a downloaded public_key.json keeps accepting them until they expire if it checks only signature and claims (jwkit's Verifier, which also checks the status list, refuses them once it fetches the new list), and rejects new tokens until you give it the new key.",
          ok: "Invalidate and generate"
        }) : Promise.resolve(true);
        ask.then(function (yes) {
          if (!yes) { return; }
          var body = hasKey ? { mode: "replace", confirm_invalidate: true } : { mode: "replace" };
          busy(generate, true);
          $("#generate-error").textContent = "";
          api("POST", base + "/keys", body).then(function (r) {
            busy(generate, false);
            if (!r.ok) { $("#generate-error").textContent = describeError(r); return; }
            shownKey = JSON.stringify(orderedJwk(r.data.public_jwk || {}), null, 2);
            $("#new-key-json").textContent = shownKey;
            $("#new-key").hidden = false;
            latest.setAttribute("data-has-key", "true");
            $("#latest-kid").textContent = r.data.kid;
            var created = $("#latest-created");
            created.setAttribute("datetime", r.data.created_at);
            created.textContent = r.data.created_at;
            localizeTimes(latest);
            $("#latest-key-info").hidden = false;
            $("#latest-key-empty").hidden = true;
            $("#check-kid").textContent = r.data.kid;
            $("#copy-key").focus();
            toast("New key " + r.data.kid + " is active.");
          });
        });
      });
    }
    var nextSecret = $("#generate-next-secret");
    if (nextSecret) {
      nextSecret.addEventListener("click", function () {
        var hasNext = nextSecret.getAttribute("data-has-next") === "true";
        var ask = hasNext ? confirmAction({
          title: "Replace the next secret?",
          body: "The next secret " + $("#next-kid").textContent + " is dropped, even if you already gave it to verifiers; the new one takes its place. The active secret is not affected.",
          ok: "Generate a new next secret",
          danger: false
        }) : Promise.resolve(true);
        ask.then(function (yes) {
          if (!yes) { return; }
          busy(nextSecret, true);
          $("#generate-error").textContent = "";
          api("POST", base + "/keys", { mode: "next" }).then(function (r) {
            busy(nextSecret, false);
            if (!r.ok) { $("#generate-error").textContent = describeError(r); return; }
            showSecret(r.data.secret_jwk, "secret_jwk_next.json",
              "Add this key to the \"keys\" of secret_jwks.json on every verifier. The next rotation promotes it; until then the current secret keeps signing.");
            nextSecret.setAttribute("data-has-next", "true");
            $("#next-kid").textContent = r.data.kid;
            $$("[data-next-secret-warning]").forEach(function (el) { el.hidden = true; });
            toast("Next secret " + r.data.kid + " generated: shown once.");
          });
        });
      });
      $("#replace-secret").addEventListener("click", function () {
        confirmAction({
          title: "Replace the shared secret now?",
          body: "A new secret signs from now on and the current one (" + $("#latest-kid").textContent +
            ") is revoked. Verifiers reject new tokens until they have the new secret, and keep accepting tokens of the old one until they expire unless you remove it from their file.",
          ok: "Replace the secret",
          check: "I understand that verifiers reject new tokens until they have the new secret"
        }).then(function (yes) {
          if (!yes) { return; }
          $("#generate-error").textContent = "";
          api("POST", base + "/keys", { mode: "replace", confirm_invalidate: true }).then(function (r) {
            if (!r.ok) { $("#generate-error").textContent = describeError(r); return; }
            showSecret({ keys: [r.data.secret_jwk] }, "secret_jwks.json",
              "This is the whole key set now: replace secret_jwks.json on every verifier with it. It holds no next secret: generate one before the next rotation.");
            $("#latest-kid").textContent = r.data.kid;
            $("#check-kid").textContent = r.data.kid;
            toast("Secret replaced: " + r.data.kid + " signs from now on.");
          });
        });
      });
    }
    $("#copy-key").addEventListener("click", function () {
      if (shownKey) { copyText(shownKey, shownName === "public_key.json" ? "Public key copied" : "Secret copied"); }
    });
    $("#download-key").addEventListener("click", function () { if (shownKey) { download(shownName, shownKey + "\n"); } });
  }

  /* ---- keys and rotation ---------------------------------------------------------------- */
  var keysMessage = $("#keys-message");
  function keysProblem(r, retry) {
    keysMessage.hidden = false;
    keysMessage.className = "message message-error";
    keysMessage.textContent = "";
    var p = document.createElement("p");
    p.textContent = "The key service refused: " + describeError(r);
    keysMessage.appendChild(p);
    var code = r.data && r.data.error;
    if (r.status === 409 && retry && code !== "no_next_secret") { /* no emergency path around it */
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-danger-outline";
      btn.id = "emergency-retry";
      btn.textContent = "Use the emergency path…";
      btn.addEventListener("click", retry);
      keysMessage.appendChild(btn);
    }
    keysMessage.focus();
  }

  function emergencyConfirm(what) {
    return confirmAction({
      title: "Emergency: " + what,
      body: "The emergency path skips the safety waits. Verifiers whose cached key set does not yet hold the new key, or that still see tokens signed by the old one, will reject valid tokens until they refresh.",
      ok: "Proceed anyway",
      check: "I understand that valid tokens may be rejected"
    });
  }

  function rotate(emergency) {
    var body = emergency ? { emergency: true } : {};
    api("POST", base + "/keys/rotate", body).then(function (r) {
      if (!r.ok) {
        keysProblem(r, emergency ? null : function () {
          emergencyConfirm("rotate now").then(function (yes) { if (yes) { rotate(true); } });
        });
        return;
      }
      reloadWith("Rotated: " + r.data.active + " is now the active key.");
    });
  }

  if (keysMessage) {
    keysMessage.setAttribute("tabindex", "-1");
    $("#rotate-keys").addEventListener("click", function () { rotate(false); });
    $("#emergency-rotate").addEventListener("click", function () {
      emergencyConfirm("rotate now").then(function (yes) { if (yes) { rotate(true); } });
    });
    var revoke = function (kid, emergency) {
      api("POST", base + "/keys/" + encodeURIComponent(kid) + "/revoke", emergency ? { emergency: true } : {}).then(function (r) {
        if (!r.ok) {
          keysProblem(r, emergency ? null : function () {
            emergencyConfirm("revoke " + kid).then(function (yes) { if (yes) { revoke(kid, true); } });
          });
          return;
        }
        reloadWith("Key " + kid + " revoked.");
      });
    };
    $$("[data-revoke]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var kid = btn.getAttribute("data-revoke");
        confirmAction({
          title: "Revoke key " + kid + "?",
          body: "A revoked key leaves the JWKS for good. The service refuses if tokens it signed may still be valid.",
          ok: "Revoke key"
        }).then(function (yes) { if (yes) { revoke(kid, false); } });
      });
    });
  }

  var policy = $("#rotation-policy");
  if (policy) {
    policy.addEventListener("submit", function (event) {
      event.preventDefault();
      var enabled = $("#rp-enabled").checked;
      var days = intValue($("#rp-days"));
      var maxAge = intValue($("#rp-maxage"));
      if (enabled && (days === null || isNaN(days) || days < 1)) { showFormError(policy, "Enter the number of days between rotations."); return; }
      if (maxAge === null || isNaN(maxAge) || maxAge < 0) { showFormError(policy, "JWKS cache lifetime must be a whole number of seconds."); return; }
      api("PATCH", base, { rotation_days: enabled ? days : null, jwks_max_age: maxAge }).then(function (r) {
        if (!r.ok) { showFormError(policy, describeError(r)); return; }
        reloadWith(enabled ? "Automatic rotation every " + days + " days." : "Automatic rotation is off.");
      });
    });
  }

  /* ---- OAuth clients -------------------------------------------------------------------- */
  var createClient = $("#create-client");
  if (createClient) {
    var secretDialog = $("#secret-dialog");
    secretDialog.addEventListener("close", function () {
      $("#new-client-secret").textContent = "";
      reloadWith("Client created.");
    });
    $("#copy-secret").addEventListener("click", function () {
      copyText($("#new-client-secret").textContent, "Client secret copied");
    });
    createClient.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = $("#cc-name").value.trim();
      if (!name) { showFormError(createClient, "Enter a name."); return; }
      var scopes = $("#cc-scopes").value.split(/\s+/).filter(Boolean);
      api("POST", base + "/clients", { name: name, scopes: scopes }).then(function (r) {
        if (!r.ok) { showFormError(createClient, describeError(r)); return; }
        showFormError(createClient, "");
        $("#new-client-id").textContent = r.data.client_id;
        $("#new-client-secret").textContent = r.data.client_secret;
        openDialog(secretDialog, $('button[type="submit"]', createClient), $("#copy-secret"));
      });
    });
    $$("[data-delete-client]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var id = btn.getAttribute("data-delete-client");
        confirmAction({
          title: "Delete client " + btn.getAttribute("data-client-name") + "?",
          body: "It can no longer get tokens. Tokens it already has stay valid until they expire.",
          ok: "Delete client"
        }).then(function (yes) {
          if (!yes) { return; }
          api("DELETE", base + "/clients/" + encodeURIComponent(id)).then(function (r) {
            if (!r.ok) { toast(describeError(r)); return; }
            reloadWith("Client deleted.");
          });
        });
      });
    });
  }

  /* ---- token tools ---------------------------------------------------------------------- */
  var mintForm = $("#mint-token");
  if (mintForm) {
    mintForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var sub = $("#mt-sub").value.trim();
      if (!sub) { showFormError(mintForm, "Enter a subject."); $("#mt-sub").focus(); return; }
      var body = { sub: sub };
      var raw = $("#mt-claims").value.trim();
      if (raw) {
        var claims;
        try { claims = JSON.parse(raw); } catch (e) { claims = undefined; }
        if (!claims || typeof claims !== "object" || Array.isArray(claims)) {
          showFormError(mintForm, "Extra claims must be a JSON object, like {\"role\": \"tester\"}.");
          $("#mt-claims").focus();
          return;
        }
        body.claims = claims;
      }
      var ttl = intValue($("#mt-ttl"));
      if (ttl !== null) {
        if (isNaN(ttl) || ttl < 1) { showFormError(mintForm, "Lifetime must be a whole number of seconds."); return; }
        body.ttl = ttl;
      }
      api("POST", base + "/tokens", body).then(function (r) {
        if (!r.ok) { showFormError(mintForm, describeError(r)); return; }
        showFormError(mintForm, "");
        $("#minted-token").textContent = r.data.access_token;
        $("#minted").hidden = false;
        toast("Token minted; it expires in " + r.data.expires_in + " s.");
      });
    });
    $("#inspect-minted").addEventListener("click", function () {
      $("#it-token").value = $("#minted-token").textContent;
      $("#inspect-token").requestSubmit();
    });
  }

  function verdictCell(ok) {
    var td = document.createElement("td");
    var span = document.createElement("span");
    span.className = "badge " + (ok ? "badge-ok" : "badge-bad");
    span.textContent = ok ? "pass" : "fail";
    td.appendChild(span);
    return td;
  }
  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (c) {
      if (typeof c === "string") { var td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
      else { tr.appendChild(c); }
    });
    return tr;
  }

  function renderInspection(data) {
    var box = $("#inspection");
    box.hidden = false;
    var verdict = $("#verdict");
    verdict.className = "verdict " + (data.valid ? "verdict-ok" : "verdict-bad");
    verdict.textContent = data.valid ? "✔ Valid: this project's verifiers accept this token." :
      "✘ Invalid: a verifier for this project rejects this token.";
    var tbody = $("#checks-table tbody");
    tbody.textContent = "";
    tbody.appendChild(row(["format", verdictCell(data.format.ok), data.format.reason]));
    if (data.format.ok) {
      var keyText = data.key ? "kid " + data.key.kid + " (" + data.key.alg + "): " + data.key.explanation :
        (data.kid ? "kid " + data.kid + ": not a key of this project" : "no kid in the header");
      tbody.appendChild(row(["key", verdictCell(!!(data.key && data.key.published)), keyText]));
      tbody.appendChild(row(["signature", verdictCell(data.signature.ok), data.signature.reason]));
      data.checks.forEach(function (c) {
        var reason = c.reason;
        if (!c.ok && c.expected !== null && c.expected !== undefined) {
          reason += " (expected " + c.expected + ", got " + (c.actual === undefined || c.actual === null ? "nothing" : JSON.stringify(c.actual)) + ")";
        }
        tbody.appendChild(row([c.claim, verdictCell(c.ok), reason]));
      });
    }
    $("#inspect-header").textContent = data.header ? JSON.stringify(data.header, null, 2) : "—";
    $("#inspect-payload").textContent = data.payload ? JSON.stringify(data.payload, null, 2) : "—";
    var times = $("#inspect-times");
    times.textContent = "";
    $("#inspect-times-box").hidden = !(data.payload && ["iat", "nbf", "exp"].some(function (n) { return typeof data.payload[n] === "number"; }));
    ["iat", "nbf", "exp"].forEach(function (name) {
      if (!data.payload || typeof data.payload[name] !== "number") { return; }
      var dt = document.createElement("dt");
      dt.textContent = name;
      var dd = document.createElement("dd");
      dd.textContent = describeTime(data.payload[name]);
      dd.setAttribute("data-claim", name);
      times.appendChild(dt); times.appendChild(dd);
    });
  }

  var inspectForm = $("#inspect-token");
  if (inspectForm) {
    inspectForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = $("#it-token").value.trim();
      if (!token) { showFormError(inspectForm, "Paste a token first."); $("#it-token").focus(); return; }
      api("POST", base + "/tokens/inspect", { token: token }).then(function (r) {
        if (!r.ok) { showFormError(inspectForm, describeError(r)); return; }
        showFormError(inspectForm, "");
        renderInspection(r.data);
      });
    });
  }

  /* ---- audit ---------------------------------------------------------------------------- */
  var verifyChain = $("#verify-chain");
  if (verifyChain) {
    verifyChain.addEventListener("click", function () {
      var out = $("#chain-result");
      busy(verifyChain, true);
      api("GET", "/api/v1/audit/verify").then(function (r) {
        busy(verifyChain, false);
        if (!r.ok) { out.className = "chain chain-bad"; out.textContent = describeError(r); return; }
        var d = r.data;
        out.className = "chain " + (d.ok ? "chain-ok" : "chain-bad");
        out.textContent = d.ok ? "✔ Chain intact: all " + d.count + " entries verified" :
          "✘ Chain BROKEN at entry #" + d.first_bad_seq + ": " + d.reason + " (" + d.count + " entries verified before it)";
        var when = document.createElement("span");
        when.className = "muted";
        when.textContent = " (checked " + describeTime(d.checked_at) + ")";
        out.appendChild(when);
      });
    });
  }

  /* ---- start ---------------------------------------------------------------------------- */
  localizeTimes(document);
  localizeTicks();
  /* Keep "now" on screen when the timeline is wider than its card (phones). */
  var timeline = $("#timeline");
  if (timeline) {
    var wrap = timeline.parentNode, now = $(".now-line", timeline);
    var scale = timeline.getBoundingClientRect().width / timeline.viewBox.baseVal.width;
    var nowX = Number(now.getAttribute("x1")) * scale;
    if (nowX > wrap.clientWidth - 24) { wrap.scrollLeft = nowX - wrap.clientWidth * 0.6; }
  }
  try {
    var flash = window.sessionStorage.getItem("jwkit-flash");
    if (flash) { window.sessionStorage.removeItem("jwkit-flash"); toast(flash); }
  } catch (e) { /* ignore */ }
})();
