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
  if (!form || !file || !preview || !remove || !publish) {
    return;
  }

  var placeholderSrc = preview.getAttribute("src");
  var placeholderAlt = preview.getAttribute("alt");
  var objectURL = "";

  function showPreview(chosen) {
    if (objectURL) {
      URL.revokeObjectURL(objectURL);
      objectURL = "";
    }
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
