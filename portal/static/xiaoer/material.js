// The mobile material page: copy a filled script in one tap, then tell the server it was copied (counted as use).
// navigator.clipboard where the browser allows it (a secure page); else a hidden textarea and execCommand
// (older WeCom browsers); if both fail, the text is selected for a long-press copy.
(function () {
  "use strict";

  function message(kind) {
    var template = document.getElementById("copy-messages");
    var node = template && template.content.querySelector("[data-" + kind + "]");
    return node ? node.textContent : "";
  }

  function show(kind) {
    var note = document.getElementById("copied");
    if (note) note.textContent = message(kind);
  }

  function report() {
    var page = document.getElementById("material");
    var token = document.querySelector("#used-form input[name=csrfmiddlewaretoken]");
    if (!page || !token || !window.fetch) return;
    var body = new URLSearchParams({action: "copy"});
    fetch(page.getAttribute("data-used-url"), {
      method: "POST", body: body, credentials: "same-origin", headers: {"X-CSRFToken": token.value}
    }).catch(function () { /* counting is best effort: the copy itself worked */ });
  }

  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    area.setSelectionRange(0, text.length);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    document.body.removeChild(area);
    return copied;
  }

  function selectText(source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copied() { show("done"); report(); }

  function fallback(source, text) {
    if (legacyCopy(text)) { copied(); return; }
    selectText(source);
    show("failed");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(copied, function () { fallback(source, text); });
    } else {
      fallback(source, text);
    }
  });
})();
