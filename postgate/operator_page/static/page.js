// The operator page: open the kill switch dialogs and re-read the live panels.
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  if (!panels) { return; }
  var every = parseInt(panels.getAttribute("data-refresh-ms"), 10) || 3000;

  function fill(dialog, name, value) {
    dialog.querySelectorAll('[data-fill="' + name + '"]').forEach(function (el) {
      el.textContent = value;
    });
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("button[data-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open"));
      var form = dialog.querySelector("form");
      var tenant = opener.getAttribute("data-tenant");
      var scope = opener.getAttribute("data-scope") || "";
      form.reset();
      form.action = form.getAttribute("data-action-template")
        .replace("{slug}", encodeURIComponent(tenant));
      fill(dialog, "tenant", tenant);
      fill(dialog, "scope", scope.replace("_", " "));
      var held = opener.getAttribute("data-held") || "";
      fill(dialog, "held", held);
      var heldField = form.querySelector('input[type="hidden"][name="held"]');
      if (heldField) { heldField.value = held; }  // cancel exactly what the operator saw
      var heldAt = form.querySelector('input[type="hidden"][name="held_at"]');
      if (heldAt) { heldAt.value = opener.getAttribute("data-held-at") || ""; }
      var scopeField = form.querySelector('input[type="hidden"][name="scope"]');
      if (scopeField) { scopeField.value = scope; }
      dialog.showModal();
      return;
    }
    var closer = event.target.closest("[data-close]");
    if (closer) { closer.closest("dialog").close(); }
  });

  // Once a form is submitted the page is leaving (every form posts and redirects): stop
  // polling and abort a read in flight, which would otherwise race a logout into a 401.
  var timer = null;
  var inflight = null;
  document.addEventListener("submit", function () {
    window.clearInterval(timer);
    if (inflight) { inflight.abort(); }
  });

  function refresh() {
    if (document.querySelector("dialog[open]")) { return; }  // never under an open form
    if (inflight) { return; }  // the previous read has not answered yet
    inflight = new AbortController();
    fetch("/operator/panels", { credentials: "same-origin", cache: "no-store",
                                signal: inflight.signal })
      .then(function (reply) {
        if (reply.status === 401) { window.location.assign("/operator/login"); return null; }
        return reply.ok ? reply.text() : null;
      })
      .then(function (html) { if (html !== null) { panels.innerHTML = html; } })
      .catch(function () { /* aborted, or the next tick tries again */ })
      .finally(function () { inflight = null; });
  }
  timer = window.setInterval(refresh, every);
})();
