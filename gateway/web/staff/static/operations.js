/* Operations pages: a Print button on the invitation sheet (without JavaScript the browser's own
 * Print command does the same). No inline code: the Content-Security-Policy forbids it. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll(".js-print");
    for (var i = 0; i < buttons.length; i += 1) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function () { window.print(); });
    }
  });
})();
