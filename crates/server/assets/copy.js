// The portal's copy buttons (docs/portal.md): the one script of these pages, served from
// the binary at /portal/copy.js (the CSP allows no inline script). Without it the buttons
// stay hidden and the snippets stay selectable text.
"use strict";
(function () {
  var status = document.getElementById("copy-status");
  function say(button, text) {
    button.textContent = text;
    if (status) status.textContent = text;
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }
  function fallback(button, target) {
    // Selects the snippet, so that Ctrl+C copies it if the clipboard is not available.
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(button, copied ? "Copied" : "Selected: press Ctrl+C");
  }
  var buttons = document.querySelectorAll("button[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = target.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say(button, "Copied"); },
          function () { fallback(button, target); }
        );
      } else {
        fallback(button, target);
      }
    });
  });
})();
