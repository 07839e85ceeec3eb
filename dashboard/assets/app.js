// Outpost dashboard: progressive enhancement only. Every page works without
// this script; it adds confirmations, copy buttons and the live build log.
(function () {
  "use strict";

  // Destructive buttons carry data-confirm. Listening on submit (not click)
  // also catches keyboard submission.
  document.addEventListener("submit", function (ev) {
    var src = ev.submitter && ev.submitter.dataset.confirm ? ev.submitter : ev.target;
    var msg = src && src.dataset ? src.dataset.confirm : "";
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  function setUp() {
    document.querySelectorAll("button[data-copy]").forEach(copyButton);
    var log = document.getElementById("log");
    if (log && log.dataset.events && FINISHED.indexOf(log.dataset.status) < 0) follow(log);
  }

  function copyButton(btn) {
    var target = document.getElementById(btn.dataset.copy);
    if (!target) return;
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var text = target.textContent;
      var done = function (label) {
        btn.textContent = label;
        setTimeout(function () { btn.textContent = "Copy"; }, 2000);
      };
      var fallback = function () {
        var range = document.createRange();
        range.selectNodeContents(target);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok ? "Copied" : "Press Ctrl+C");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done("Copied"); }, fallback);
      } else {
        fallback();
      }
    });
  }

  // Keep in step with FINISHED in pages/deployment.rs and tone() in
  // components.rs.
  var FINISHED = ["ready", "failed", "cancelled"];
  function tone(status) {
    switch (status) {
      case "ready": case "alive": case "active": case "success": case "production": return "ok";
      case "failed": case "error": case "down": case "revoked": return "bad";
      case "queued": case "building": case "pending": case "deploying": case "uploading": case "suspect": return "warn";
      case "cancelled": case "canceled": case "unknown": case "expired": return "muted";
      default: return "info";
    }
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ms) {
    var d = new Date(ms);
    if (isNaN(d.getTime())) return "--:--:--";
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  // Log text is untrusted build output: only ever set through textContent.
  function lineNode(d) {
    var line = document.createElement("span");
    line.className = "line " + (d.stream === "stderr" ? "stderr" : "stdout");
    var ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = clock(d.ts);
    line.appendChild(ts);
    line.appendChild(document.createTextNode(" " + String(d.line == null ? "" : d.line) + "\n"));
    return line;
  }

  function parse(ev) {
    try { return JSON.parse(ev.data) || {}; } catch (e) { return null; }
  }

  function follow(log) {
    var after = Number(log.dataset.after);
    if (!isFinite(after)) after = -1;
    var source = new EventSource(log.dataset.events);

    source.addEventListener("log", function (ev) {
      var d = parse(ev);
      if (!d) return;
      // A reconnect may replay lines the page already shows.
      if (typeof d.seq === "number") {
        if (d.seq <= after) return;
        after = d.seq;
        log.dataset.after = String(after);
      }
      var placeholder = log.querySelector(".placeholder");
      if (placeholder) placeholder.remove();
      // Follow the tail only if the reader has not scrolled up to read.
      var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 32;
      log.appendChild(lineNode(d));
      if (atBottom) log.scrollTop = log.scrollHeight;
    });

    source.addEventListener("status", function (ev) {
      var d = parse(ev) || {};
      var status = typeof d.status === "string" ? d.status : "";
      var badge = document.getElementById("deployment-status");
      if (badge && status) {
        badge.textContent = status;
        badge.className = "badge badge-" + tone(status);
        badge.dataset.status = status;
      }
      if (status) log.dataset.status = status;
      var placeholder = log.querySelector(".placeholder");
      if (placeholder) placeholder.textContent = "The build produced no output.";
      if (d.error) {
        var box = document.getElementById("deployment-error");
        if (box) {
          box.textContent = String(d.error);
          box.hidden = false;
        }
      }
      source.close();
      // The rest of the page (timeline, files, buttons, production badge)
      // changed with the status: take it fresh from the server, then say
      // the build is done.
      refresh(function () { document.body.dataset.buildDone = "1"; });
    });
  }

  function refresh(then) {
    var finish = function () { then(); };
    if (!window.fetch || !window.DOMParser) return finish();
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (!fresh || !main) return;
        main.replaceWith(document.adoptNode(fresh));
        document.querySelectorAll("main button[data-copy]").forEach(copyButton);
        var log = document.getElementById("log");
        if (log) log.scrollTop = log.scrollHeight;
      })
      .then(finish, finish);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
