/* Shows that a slow page is on its way: a form or link marked data-busy="<region id>" marks
 * that region aria-busy, disables the form's submit buttons and writes the text of the
 * region's note (<p role="status" data-busy-note="<region id>" data-busy-text="...">) into it.
 * The page that answers replaces all of it; without JavaScript the forms and links work as
 * they are, only without the note.
 */
(function () {
  "use strict";

  function markBusy(regionId) {
    var region = document.getElementById(regionId);
    if (region) region.setAttribute("aria-busy", "true");
    var note = document.querySelector('[data-busy-note="' + regionId + '"]');
    if (note) note.textContent = note.getAttribute("data-busy-text");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute("data-busy")) return;
    markBusy(form.getAttribute("data-busy"));
    var buttons = form.querySelectorAll("button[type=submit], button:not([type]), input[type=submit]");
    // Disabled after the browser has read the form, so a named submit button is still sent.
    window.setTimeout(function () {
      buttons.forEach(function (button) {
        button.disabled = true;
        button.setAttribute("data-busy-disabled", "");
      });
    }, 0);
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-busy]");
    // A link opened in a new tab or window leaves this page as it is.
    if (!link || event.defaultPrevented || event.button !== 0 ||
        event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    markBusy(link.getAttribute("data-busy"));
  });

  // Back to this page from the browser's cache: it is no longer waiting for anything.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("[aria-busy=true]").forEach(function (region) {
      region.removeAttribute("aria-busy");
    });
    document.querySelectorAll("[data-busy-note]").forEach(function (note) {
      note.textContent = "";
    });
    document.querySelectorAll("[data-busy-disabled]").forEach(function (button) {
      button.disabled = false;
      button.removeAttribute("data-busy-disabled");
    });
  });
})();
