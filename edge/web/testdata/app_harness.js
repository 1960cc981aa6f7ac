// Runs static/app.js against a minimal fake DOM and checks its behaviour:
// node app_harness.js path/to/app.js. Prints how many checks passed, or throws.
"use strict";
const fs = require("fs");
const vm = require("vm");
const assert = require("assert");

const source = fs.readFileSync(process.argv[2], "utf8");
let passed = 0;
function check(name, fn) {
  fn();
  passed++;
}

function setup(present) {
  const doc = { active: null, byId: {} };
  function element(id, attrs, extra) {
    const e = {
      id,
      attrs: Object.assign({}, attrs),
      listeners: {},
      hidden: "hidden" in attrs,
      disabled: false,
      getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; },
      setAttribute(n, v) { this.attrs[n] = String(v); },
      removeAttribute(n) { delete this.attrs[n]; },
      addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); },
      focus() { doc.active = this; },
    };
    return Object.assign(e, extra || {});
  }
  const file = element("file", { type: "file" });
  let files = [];
  Object.defineProperty(file, "files", { get: () => files });
  Object.defineProperty(file, "value", {
    get: () => (files.length ? "C:\\fakepath\\" + files[0].name : ""),
    set: (v) => { assert.strictEqual(v, "", "a script may only clear a file input"); files = []; },
  });
  file.choose = (list) => { files = list; dispatch(file, "change"); };
  file.restore = (list) => { files = list; }; // the browser refills it, no change event
  const preview = element("preview", { src: "/static/preview.svg", alt: "Choose a photo" });
  preview.src = preview.attrs.src;
  preview.alt = preview.attrs.alt;
  const note = element("photo-note", { hidden: "" });
  note.textContent = "";
  const elements = {
    upload: element("upload", {}),
    file,
    preview,
    "photo-note": note,
    remove: element("remove", { hidden: "" }),
    publish: element("publish", {}),
  };
  for (const id of present) doc.byId[id] = elements[id];

  const win = element("window", {});
  const blobs = { made: 0, live: new Set(), revoked: [] };
  const context = {
    document: { getElementById: (id) => doc.byId[id] || null },
    window: win,
    URL: {
      createObjectURL(f) {
        assert.ok(f && f.name, "createObjectURL needs a file");
        const u = "blob:" + ++blobs.made;
        blobs.live.add(u);
        return u;
      },
      revokeObjectURL(u) {
        assert.ok(blobs.live.delete(u), "revoked an unknown or already revoked URL " + u);
        blobs.revoked.push(u);
      },
    },
  };
  vm.runInNewContext(source, context, { filename: "app.js" });
  return Object.assign({ doc, win, blobs, note }, elements);
}

function dispatch(target, type, init) {
  const ev = Object.assign({ type, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } }, init);
  for (const fn of target.listeners[type] || []) fn.call(target, ev);
  return ev;
}

const all = ["upload", "file", "preview", "photo-note", "remove", "publish"];

check("choosing a file previews it", () => {
  const p = setup(all);
  p.file.choose([{ name: "cat.jpg" }]);
  assert.strictEqual(p.preview.src, "blob:1");
  assert.match(p.preview.alt, /cat\.jpg/);
  assert.notStrictEqual(p.preview.alt, "Choose a photo");
  assert.strictEqual(p.remove.hidden, false);
});

check("choosing another file revokes the old URL", () => {
  const p = setup(all);
  p.file.choose([{ name: "a.png" }]);
  p.file.choose([{ name: "b.png" }]);
  assert.deepStrictEqual(p.blobs.revoked, ["blob:1"]);
  assert.strictEqual(p.preview.src, "blob:2");
  assert.match(p.preview.alt, /b\.png/);
});

check("cancelling the picker restores the placeholder", () => {
  const p = setup(all);
  p.file.choose([{ name: "a.png" }]);
  p.file.choose([]);
  assert.strictEqual(p.preview.src, "/static/preview.svg");
  assert.strictEqual(p.preview.alt, "Choose a photo");
  assert.strictEqual(p.remove.hidden, true);
  assert.strictEqual(p.blobs.live.size, 0);
});

check("remove clears the input and the preview, and keeps focus", () => {
  const p = setup(all);
  p.file.choose([{ name: "a.png" }]);
  dispatch(p.remove, "click");
  assert.strictEqual(p.file.value, "");
  assert.strictEqual(p.file.files.length, 0);
  assert.strictEqual(p.preview.src, "/static/preview.svg");
  assert.strictEqual(p.preview.alt, "Choose a photo");
  assert.strictEqual(p.remove.hidden, true);
  assert.strictEqual(p.blobs.live.size, 0);
  assert.strictEqual(p.doc.active, p.file);
});

check("submit disables Publish once", () => {
  const p = setup(all);
  const first = dispatch(p.upload, "submit");
  assert.strictEqual(first.defaultPrevented, false, "the first submit must go through");
  assert.strictEqual(p.publish.disabled, true);
  assert.strictEqual(p.publish.getAttribute("aria-busy"), "true");
  const second = dispatch(p.upload, "submit");
  assert.strictEqual(second.defaultPrevented, true, "a second submit must be stopped");
});

check("a page restored from the bfcache can publish again", () => {
  const p = setup(all);
  dispatch(p.upload, "submit");
  dispatch(p.win, "pageshow", { persisted: true });
  assert.strictEqual(p.publish.disabled, false);
  assert.strictEqual(p.publish.getAttribute("aria-busy"), null);
  assert.strictEqual(dispatch(p.upload, "submit").defaultPrevented, false);
});

check("a plain page load leaves Publish alone", () => {
  const p = setup(all);
  dispatch(p.win, "pageshow", { persisted: false });
  assert.strictEqual(p.publish.disabled, false);
});

check("a file restored by history navigation is previewed", () => {
  const p = setup(all);
  p.file.restore([{ name: "kept.gif" }]);
  dispatch(p.win, "pageshow", { persisted: false });
  assert.strictEqual(p.preview.src, "blob:1");
  assert.strictEqual(p.remove.hidden, false);
});

check("a file the browser cannot show keeps the placeholder and says so", () => {
  const p = setup(all);
  p.file.choose([{ name: "notes.txt" }]);
  dispatch(p.preview, "error");
  assert.strictEqual(p.preview.src, "/static/preview.svg");
  assert.match(p.preview.alt, /notes\.txt/);
  assert.strictEqual(p.note.hidden, false);
  assert.match(p.note.textContent, /notes\.txt/);
  assert.strictEqual(p.remove.hidden, false, "the file is still chosen and can be removed");
  assert.strictEqual(p.file.files.length, 1);
  assert.strictEqual(p.blobs.live.size, 0);
  // Another choice, or Remove photo, clears the note.
  p.file.choose([{ name: "cat.jpg" }]);
  assert.strictEqual(p.note.hidden, true);
  assert.strictEqual(p.note.textContent, "");
  assert.strictEqual(p.preview.src, "blob:2");
  dispatch(p.preview, "error");
  dispatch(p.remove, "click");
  assert.strictEqual(p.note.hidden, true);
});

check("an error of the placeholder or of a replaced preview is ignored", () => {
  const p = setup(all);
  dispatch(p.preview, "error");
  assert.strictEqual(p.note.hidden, true);
  p.file.choose([{ name: "a.png" }]);
  p.preview.src = "blob:stale"; // as if an old load reported late
  dispatch(p.preview, "error");
  assert.strictEqual(p.note.hidden, true);
  assert.strictEqual(p.blobs.live.size, 1);
});

check("the note is optional", () => {
  const p = setup(["upload", "file", "preview", "remove", "publish"]);
  p.file.choose([{ name: "notes.txt" }]);
  dispatch(p.preview, "error");
  assert.strictEqual(p.preview.src, "/static/preview.svg");
});

check("a page without the form is left alone", () => {
  const p = setup(["preview"]);
  assert.strictEqual(Object.keys(p.win.listeners).length, 0);
});

console.log("app.js: " + passed + " checks ok");
