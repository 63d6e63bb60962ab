/* The console's one script (the hub's own, no dependency). Pages work without it; with it:
 * - an element with data-refresh="<seconds>" and an id is reloaded from its page in place;
 * - a form with data-confirm="<text>" asks before it is sent. */
(function () {
  "use strict";
  function refresh(el) {
    var seconds = parseInt(el.getAttribute("data-refresh"), 10);
    if (!(seconds > 0)) { return; }
    window.setTimeout(function tick() {
      fetch(window.location.href, {credentials: "same-origin", headers: {"X-Console-Refresh": "1"}})
        .then(function (r) {
          if (r.redirected || !r.ok) { window.location.reload(); return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (fresh) { el.innerHTML = fresh.innerHTML; }
          window.setTimeout(tick, seconds * 1000);
        })
        .catch(function () { window.setTimeout(tick, seconds * 1000); });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh][id]").forEach(refresh);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
    document.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input[name='" + box.getAttribute("data-select-all") + "']")
          .forEach(function (b) { b.checked = box.checked; });
      });
    });
  });
}());
