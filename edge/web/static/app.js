// Extagram feed page: preview the chosen photo, let it be removed, and make
// one click on Publish send one post. No inline handlers: the page runs under
// a CSP with script-src 'self'.
(function () {
  "use strict";

  var form = document.getElementById("upload");
  var file = document.getElementById("file");
  var preview = document.getElementById("preview");
  var remove = document.getElementById("remove");
  var publish = document.getElementById("publish");
  // Optional: where the page says that a chosen file cannot be shown.
  var note = document.getElementById("photo-note");
  if (!form || !file || !preview || !remove || !publish) {
    return;
  }

  var placeholderSrc = preview.getAttribute("src");
  var placeholderAlt = preview.getAttribute("alt");
  var objectURL = "";
  var chosenName = "";

  function revoke() {
    if (objectURL) {
      URL.revokeObjectURL(objectURL);
      objectURL = "";
    }
  }

  function showNote(text) {
    if (note) {
      note.textContent = text;
      note.hidden = !text;
    }
  }

  function showPreview(chosen) {
    revoke();
    showNote("");
    chosenName = chosen ? chosen.name : "";
    if (chosen) {
      objectURL = URL.createObjectURL(chosen);
      preview.src = objectURL;
      preview.alt = "Chosen photo: " + chosen.name + ". Choose another photo";
      remove.hidden = false;
    } else {
      preview.src = placeholderSrc;
      preview.alt = placeholderAlt;
      remove.hidden = true;
    }
  }

  function chosenFile() {
    return file.files && file.files.length > 0 ? file.files[0] : null;
  }

  function enablePublish() {
    publish.disabled = false;
    publish.removeAttribute("aria-busy");
  }

  // The browser could not decode the chosen file (not an image, or a format
  // it does not show): keep the placeholder rather than a broken image, and
  // say why. The file stays chosen; the server gives the final answer.
  preview.addEventListener("error", function () {
    // Only the current preview: an error of the placeholder, or of a file
    // already replaced by another, is not about the chosen file.
    if (!objectURL || preview.src !== objectURL) {
      return;
    }
    revoke();
    preview.src = placeholderSrc;
    preview.alt = "Chosen file: " + chosenName + " (no preview). Choose another photo";
    showNote("No preview: " + chosenName + " may not be a photo.");
  });

  file.addEventListener("change", function () {
    showPreview(chosenFile());
  });

  remove.addEventListener("click", function () {
    file.value = "";
    showPreview(null);
    // The button hides itself: keep focus on the photo picker, not the body.
    file.focus();
  });

  form.addEventListener("submit", function (event) {
    if (publish.disabled) {
      event.preventDefault();
      return;
    }
    publish.disabled = true;
    publish.setAttribute("aria-busy", "true");
  });

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      // Restored from the back/forward cache with Publish still disabled.
      enablePublish();
    }
    // A browser may restore the chosen file on history navigation.
    if (!objectURL && chosenFile()) {
      showPreview(chosenFile());
    }
  });
})();
