// The upload form: drag-and-drop, a preview before searching, and the chosen photo kept in this browser
// (IndexedDB) so the results page can search a part of it again. Nothing here sends the photo anywhere else.
(function () {
  const input = document.getElementById("image");
  const drop = document.getElementById("drop");
  const preview = document.getElementById("preview");
  const text = document.getElementById("drop-text");
  const form = document.getElementById("upload-form");
  if (!input || !drop) return;

  function show(file) {
    if (!file || !file.type.startsWith("image/")) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    text.textContent = file.name;
  }

  input.addEventListener("change", () => show(input.files[0]));
  ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show(input.files[0]);
    }
  });
  form.addEventListener("submit", (event) => {
    if (!input.files.length) return;
    event.preventDefault();  // submitted once the photo is kept (or could not be: the search goes on anyway)
    window.lookalikePhoto.keep(input.files[0]).finally(() => form.submit());
  });
})();

// The last searched photo, in this browser only.
window.lookalikePhoto = (function () {
  function store(mode, work) {
    return new Promise((resolve, reject) => {
      const opening = indexedDB.open("lookalike", 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore("photos");
      opening.onerror = () => reject(opening.error);
      opening.onsuccess = () => {
        const transaction = opening.result.transaction("photos", mode);
        const request = work(transaction.objectStore("photos"));
        transaction.oncomplete = () => resolve(request.result);
        transaction.onerror = () => reject(transaction.error);
      };
    });
  }
  return {
    keep: (file) => store("readwrite", (photos) => photos.put(file, "last")),
    last: () => store("readonly", (photos) => photos.get("last")),
  };
})();

// The results page: the box that was searched, over the photo; drag it or its corner (mouse, touch, pen), or use
// the keyboard, then search that part of the photo again. Coordinates are pixels of the uploaded photo.
(function () {
  const frame = document.getElementById("frame");
  if (!frame) return;
  const photo = document.getElementById("query-photo");
  const boxElement = document.getElementById("box");
  const handle = document.getElementById("box-handle");
  const form = document.getElementById("box-form");
  const field = document.getElementById("box-field");
  const label = document.getElementById("box-value");
  const width = Number(frame.dataset.width);
  const height = Number(frame.dataset.height);
  const minSide = Math.max(1, Math.round(Math.min(width, height) / 20));
  const [x0, y0, w0, h0] = frame.dataset.box.split(",").map(Number);
  let box = { x: x0, y: y0, w: w0, h: h0 };

  function clamp(value, low, high) { return Math.min(Math.max(value, low), high); }

  function set(next) {
    const w = clamp(Math.round(next.w), minSide, width);
    const h = clamp(Math.round(next.h), minSide, height);
    box = { x: clamp(Math.round(next.x), 0, width - w), y: clamp(Math.round(next.y), 0, height - h), w: w, h: h };
    draw();
  }

  function draw() {
    const scale = photo.clientWidth / width;
    boxElement.style.left = box.x * scale + "px";
    boxElement.style.top = box.y * scale + "px";
    boxElement.style.width = box.w * scale + "px";
    boxElement.style.height = box.h * scale + "px";
    const value = [box.x, box.y, box.w, box.h].join(",");
    field.value = value;
    label.textContent = value;
  }

  function dragging(target, change) {
    target.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      event.stopPropagation();
      target.setPointerCapture(event.pointerId);
      const start = { x: event.clientX, y: event.clientY, box: Object.assign({}, box) };
      const move = (moved) => {
        const scale = width / photo.clientWidth;
        change(start.box, (moved.clientX - start.x) * scale, (moved.clientY - start.y) * scale);
      };
      const stop = () => {
        target.removeEventListener("pointermove", move);
        target.removeEventListener("pointerup", stop);
        target.removeEventListener("pointercancel", stop);
      };
      target.addEventListener("pointermove", move);
      target.addEventListener("pointerup", stop);
      target.addEventListener("pointercancel", stop);
    });
  }

  dragging(boxElement, (from, dx, dy) => set({ x: from.x + dx, y: from.y + dy, w: from.w, h: from.h }));
  dragging(handle, (from, dx, dy) => set({
    x: from.x, y: from.y, w: Math.min(from.w + dx, width - from.x), h: Math.min(from.h + dy, height - from.y),
  }));

  const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  boxElement.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !form.hidden) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    const arrow = arrows[event.key];
    if (!arrow) return;
    event.preventDefault();
    const step = Math.max(1, Math.round(Math.max(width, height) / 50));  // 2 % of the photo a key press
    const [dx, dy] = [arrow[0] * step, arrow[1] * step];
    if (event.shiftKey) {
      set({ x: box.x, y: box.y, w: Math.min(box.w + dx, width - box.x), h: Math.min(box.h + dy, height - box.y) });
    } else {
      set({ x: box.x + dx, y: box.y + dy, w: box.w, h: box.h });
    }
  });

  photo.addEventListener("load", draw);
  window.addEventListener("resize", draw);
  if (photo.complete) draw();

  // Whether a kept photo is this page's upload: the same bytes. Another tab, or a later search, may have kept
  // another photo of the same size since. SHA-256 where the browser offers it (HTTPS, or this machine); else the
  // length alone.
  function isThisUpload(file) {
    if (file.size !== Number(frame.dataset.bytes)) return Promise.resolve(false);
    if (!window.crypto || !window.crypto.subtle) return Promise.resolve(true);
    return file.arrayBuffer().then((data) => window.crypto.subtle.digest("SHA-256", data)).then((digest) =>
      Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
        === frame.dataset.sha256);
  }

  // Searching again needs the photo itself: the one this browser kept, if it is this search's.
  window.lookalikePhoto.last().then((file) => file && isThisUpload(file).then((same) => {
    if (!same) return;  // the box is shown, not editable
    photo.src = URL.createObjectURL(file);  // full resolution, from this browser
    const upload = document.createElement("input");
    upload.type = "file";
    upload.name = "image";
    upload.hidden = true;
    const files = new DataTransfer();
    files.items.add(file);
    upload.files = files.files;
    form.prepend(upload);
    form.hidden = false;
    frame.classList.add("editable");
  })).catch(() => {});  // no IndexedDB (a private window, say): the box is shown, not editable
})();
