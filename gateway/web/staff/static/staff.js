/* Staff pages: small enhancements only; every page works without this script.
 * - The list of problems at the top of a refused form gets the focus, so it is read first.
 * No storage, no third-party requests, no inline code (the Content-Security-Policy forbids it).
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-autofocus]");
    if (summary) summary.focus();
  });
})();
