// pgq dashboard: live parts and relative times. Plain script, no inline code (CSP).
// An element with data-live (its fragment URL) and data-events (an SSE URL) is
// fetched again, at most twice a second, whenever the stream reports a change.
"use strict";

function liven(el) {
  var src = el.dataset.live;
  var stream = el.dataset.events;
  var timer = null;
  var busy = false;
  var again = false;
  var last = 0;

  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { el.innerHTML = html; relativeTimes(el); el.dataset.refreshed = String(Date.now()); }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(refresh, Math.max(0, 500 - (Date.now() - last)));
  }

  if (!stream || typeof EventSource === "undefined") return;
  var source = new EventSource(stream);
  var broken = false;
  ["job", "resync", "state", "progress"].forEach(function (name) {
    source.addEventListener(name, schedule);
  });
  source.addEventListener("end", function () { schedule(); source.close(); });
  source.addEventListener("open", function () {
    el.dataset.liveState = "open";
    if (broken) { broken = false; schedule(); }  // changes may have been missed meanwhile
  });
  source.addEventListener("error", function () { broken = true; el.dataset.liveState = "reconnecting"; });
}

function relativeTimes(root) {
  var now = Date.now();
  root.querySelectorAll("time[datetime]").forEach(function (t) {
    var at = Date.parse(t.getAttribute("datetime"));
    if (isNaN(at)) return;
    var s = Math.abs(now - at) / 1000;
    var text = s < 1 ? Math.round(s * 1000) + " ms" : s < 60 ? s.toFixed(1) + " s" : s < 3600 ? Math.round(s / 60) + " min"
      : s < 172800 ? (s / 3600).toFixed(1) + " h" : Math.round(s / 86400) + " d";
    t.textContent = now >= at ? text + " ago" : "in " + text;
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-live]").forEach(liven);
  setInterval(function () { relativeTimes(document); }, 15000);
});
