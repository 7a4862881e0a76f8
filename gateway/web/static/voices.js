/* Participant pages: quick exit, and moving between pages without leaving a trail in history.
 *
 * Everything works without this script. With it:
 * - "Leave this site now", or Shift pressed three times, hides the page at once, ends the session
 *   in the background and replaces the current history entry with a neutral site;
 * - links and forms within the pages are fetched and shown in place, in the same history entry,
 *   so after a quick exit no page of this site is left in the browser's Back list.
 * No storage, no third-party requests, no inline code (the Content-Security-Policy forbids it).
 */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  function exitLink() {
    return document.getElementById("quick-exit");
  }

  function leave() {
    var link = exitLink();
    var target = (link && link.getAttribute("data-exit-url")) || "about:blank";
    root.classList.add("leaving");
    try {
      navigator.sendBeacon(link ? link.getAttribute("href") : "/exit");
    } catch (ignored) { /* the session still ends when it expires */ }
    window.location.replace(target);
  }

  function sameSite(url) {
    return url.origin === window.location.origin;
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0) return;
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link) return;
    if (link.id === "quick-exit" || link.hasAttribute("data-quick-exit")) {
      event.preventDefault();
      leave();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey || link.target) return;
    var url = new URL(link.href, window.location.href);
    if (!sameSite(url)) return;
    event.preventDefault();
    if (url.hash && url.pathname === window.location.pathname && url.search === window.location.search) {
      // An in-page link (skip link, list of problems): move there without a history entry.
      moveTo(document.getElementById(decodeURIComponent(url.hash.slice(1))));
      return;
    }
    load(url.href, {credentials: "same-origin"}, function () { window.location.replace(url.href); });
  });

  // Shift three times in a row (no other key between, within two seconds) leaves.
  var presses = 0;
  var last = 0;
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Shift") {
      presses = 0;
      return;
    }
    if (event.repeat) return;
    var now = Date.now();
    presses = now - last < 2000 ? presses + 1 : 1;
    last = now;
    if (presses >= 3) {
      presses = 0;
      leave();
    }
  }, true);

  // Forms are sent in the background; the answer replaces this page and this history entry.
  var busy = false;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    event.preventDefault();
    if (busy) return;
    busy = true;
    var submitter = event.submitter || null;
    var data = new FormData(form, submitter);
    // getAttribute: a control named "action" would shadow the form's own `action` property.
    var target = new URL(form.getAttribute("action") || "", window.location.href).href;
    load(target, {method: "POST", body: new URLSearchParams(data), credentials: "same-origin"}, function () {
      sendNatively(form, submitter);
    }, function () {
      busy = false;
    });
  });

  // Fetch a page of this site and show it in place of this one, in this same history entry.
  function load(url, options, fallback, always) {
    fetch(url, options).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!sameSite(new URL(response.url)) || type.indexOf("text/html") !== 0) {
        window.location.replace(response.url);
        return null;
      }
      return response.text().then(function (html) { show(html, response.url); });
    }).catch(fallback).then(function () {
      if (always) always();
    });
  }

  function sendNatively(form, submitter) {
    if (submitter && submitter.name) {
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      form.appendChild(field);
    }
    form.submit();
  }

  function show(html, url) {
    var next = new DOMParser().parseFromString(html, "text/html");
    document.title = next.title;
    root.lang = next.documentElement.lang;
    root.dir = next.documentElement.dir;
    document.body.replaceWith(document.adoptNode(next.body));
    window.history.replaceState(null, "", url);
    window.scrollTo(0, 0);
    // Tell screen readers where they are: the problems if any, else the page heading.
    moveTo(document.querySelector("[data-autofocus]") || document.querySelector("main h1") ||
      document.getElementById("main"), false);
  }

  function moveTo(element, scroll) {
    if (!element) return;
    if (!element.hasAttribute("tabindex") && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(element.tagName)) {
      element.setAttribute("tabindex", "-1");
    }
    element.focus({preventScroll: scroll === false});
    if (scroll !== false) element.scrollIntoView({block: "start"});
  }
})();
