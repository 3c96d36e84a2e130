// prefactor viewer: live updates, span selection and sign-in links. No dependencies.
(function () {
  "use strict";

  var POLL_MS = 2000;

  // Times are rendered in UTC by the server; show them in the reader's zone.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var pad = function (n) { return String(n).padStart(2, "0"); };
      el.textContent = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
        " " + pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds());
      el.title = when.toString();
    });
    root.querySelectorAll("th, dt").forEach(function (el) {
      if (el.textContent.indexOf(" (UTC)") >= 0) el.textContent = el.textContent.replace(" (UTC)", "");
    });
  }

  // Grid lines under the waterfall's bars: the tick spacing comes from the page (CSP forbids
  // inline styles, not styles set from a script).
  function grid(root) {
    root.querySelectorAll("ol.spans[data-tick]").forEach(function (list) {
      list.style.setProperty("--tick", list.dataset.tick + "%");
    });
  }

  // Fetch a fragment of this page; a lapsed session sends the whole page to the sign-in page.
  function fragment(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (res) {
      if (res.redirected || res.status === 401) {
        window.location.reload();
        throw new Error("signed out");
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.text();
    });
  }

  // Call `tick` every POLL_MS while the tab is visible, until it resolves to false.
  function poll(tick) {
    function next() {
      window.setTimeout(function () {
        if (document.visibilityState !== "visible") { next(); return; }
        tick().then(function (more) { if (more !== false) next(); }, next);
      }, POLL_MS);
    }
    next();
  }

  function withSpan(url, spanId) {
    return spanId ? url + (url.indexOf("?") >= 0 ? "&" : "?") + "span=" + encodeURIComponent(spanId) : url;
  }

  // --- the runs page -------------------------------------------------------------------
  function runsPage() {
    var live = document.getElementById("runs-live");
    document.addEventListener("click", function (event) {
      var row = event.target.closest("table.runs tbody tr[data-id]");
      if (row && !event.target.closest("a")) window.location.href = "/runs/" + row.dataset.id;
    });
    if (!live || !live.dataset.liveUrl) return;
    var last = live.innerHTML;
    poll(function () {
      return fragment(live.dataset.liveUrl).then(function (html) {
        if (html === last) return true;
        var known = {};
        live.querySelectorAll("tr[data-id]").forEach(function (tr) { known[tr.dataset.id] = true; });
        live.innerHTML = html;
        last = html;
        live.querySelectorAll("tr[data-id]").forEach(function (tr) {
          if (!known[tr.dataset.id]) tr.classList.add("fresh");
        });
        localTimes(live);
        return true;
      });
    });
  }

  // --- a run's page --------------------------------------------------------------------
  function runPage() {
    var live = document.getElementById("run-live");
    var detail = document.getElementById("span-detail");
    if (!live || !detail) return;
    var selected = (live.querySelector(".span-row.selected") || {}).dataset;
    selected = selected ? selected.id : null;

    function statusOf(id) {
      var row = id && live.querySelector('.span-row[data-id="' + id + '"]');
      return row ? row.dataset.status : null;
    }

    function select(id, push) {
      selected = id;
      live.querySelectorAll(".span-row.selected").forEach(function (el) { el.classList.remove("selected"); });
      var row = live.querySelector('.span-row[data-id="' + id + '"]');
      if (row) row.classList.add("selected");
      if (push) history.replaceState(null, "", withSpan(window.location.pathname, id));
      return fragment(live.dataset.spanUrl + encodeURIComponent(id)).then(function (html) {
        if (selected !== id) return;
        detail.innerHTML = html;
        localTimes(detail);
      });
    }

    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-span]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      select(link.dataset.span, true);
    });

    function finalNow() {
      var state = live.querySelector(".run-state");
      return state && state.dataset.final === "1";
    }

    if (finalNow()) return;
    poll(function () {
      var before = statusOf(selected);
      return fragment(withSpan(live.dataset.liveUrl, selected)).then(function (html) {
        live.innerHTML = html;
        localTimes(live);
        grid(live);
        if (selected && statusOf(selected) !== before) select(selected, false);
        if (finalNow()) {
          var form = document.getElementById("terminate-form");
          if (form) form.remove();
          return false;
        }
        return true;
      });
    });
  }

  // --- sign-in: post the one-time code from the link's fragment, then forget it ----------
  function signinPage() {
    var match = /^#code=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    var form = document.getElementById("code-form");
    if (match) {
      form.elements.code.value = match[1];
      form.submit();
      return;
    }
    // Opened from a link on another site, the browser held back the SameSite=Strict
    // cookie; a request of this page's own does carry it. Signed in already: go on.
    fetch("/runs/rows", { credentials: "same-origin", cache: "no-store" }).then(function (res) {
      if (res.ok && !res.redirected) window.location.replace(form.elements.next.value);
    });
  }

  // Filters apply as soon as a choice changes (a button does it without scripts).
  function autoSubmit() {
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  function start() {
    localTimes(document);
    grid(document);
    autoSubmit();
    var page = document.body.dataset.page;
    if (page === "runs") runsPage();
    else if (page === "run") runPage();
    else if (page === "signin") signinPage();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
