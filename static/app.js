// Page behaviour: the upload queue (per-file uploads with progress, checks before sending,
// cancel, duplicates), the gallery (months, selection, filter bar), the detail page (live box
// overlay, zoom, previous/next) and a message when an htmx write is refused. Everything works
// without it, only plainer.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function csrfToken() {
    const input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // Keys a focused control uses itself: arrows move a slider or a select; text fields take all.
  function typing(target, key) {
    if (!target || target.isContentEditable || /^(SELECT|TEXTAREA)$/.test(target.tagName)) return Boolean(target);
    if (target.tagName !== "INPUT") return false;
    if (target.type === "range") return Boolean(key && key.indexOf("Arrow") === 0);  // Esc still leaves
    return !/^(checkbox|radio|button|submit)$/.test(target.type) || (key && key.indexOf("Arrow") === 0);
  }

  // ---- Upload queue: one request per file, so each file has its own progress bar, result and
  // Cancel. Not htmx (which sends a form as one request), so the script says who it is with its
  // own header, reads the HTTP status, and follows HX-Redirect (an expired session: log in again).
  const MULTIPART_SLACK = 4096; // bytes of form fields and part headers around the file itself
  const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/heic", "image/heif"];
  const IMAGE_EXTENSIONS = /\.(jpe?g|jfif|png|webp|bmp|dib|tiff?|heic|heif)$/i;

  function say(text) {  // to screen readers, politely
    const status = document.getElementById("upload-status");
    if (status) status.textContent = text;
  }

  function tileShell(tile, className, name) {
    tile.className = "tile " + className;
    tile.innerHTML = '<div class="meta"><p class="name"></p></div>';
    tile.querySelector(".name").textContent = name;
    return tile.querySelector(".meta");
  }

  // A tile that goes (dismissed, cancelled) hands the keyboard focus on: to the next tile's
  // first control, else back to the file picker.
  function removeTile(tile) {
    const next = tile.nextElementSibling || tile.previousElementSibling;
    const target = (next && next.querySelector("a, button")) || document.getElementById("images");
    const hadFocus = tile.contains(document.activeElement);
    tile.remove();
    if (hadFocus && target) target.focus();
  }

  function dismissButton(tile, name) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link dismiss";
    button.textContent = "Dismiss";
    button.setAttribute("aria-label", "Dismiss " + name);
    button.addEventListener("click", function () { removeTile(tile); });
    return button;
  }

  function rejectedTile(tile, name, message) {
    const meta = tileShell(tile, "rejected", name);
    const error = document.createElement("p");
    error.className = "error";
    error.setAttribute("role", "alert");
    error.textContent = message;
    meta.append(error, dismissButton(tile, name));
  }

  function serverMessage(xhr) {
    const text = new DOMParser().parseFromString(xhr.responseText || "", "text/html").body.textContent.trim();
    if (text) return text;
    return xhr.status === 413 ? "The file is too large." : "The upload was refused (HTTP " + xhr.status + ").";
  }

  function isImage(file) {
    return IMAGE_TYPES.indexOf(file.type) >= 0 || IMAGE_EXTENSIONS.test(file.name);
  }

  async function sha256(file) {
    if (!window.crypto || !window.crypto.subtle) return null;  // not a secure context: no check
    const digest = await window.crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // Files are read and hashed a few at a time (a hundred phone photos at once would hold them
  // all in memory), each when its turn comes.
  const CHECKING_AT_ONCE = 2;
  let checking = 0;
  const waitingToCheck = [];
  function nextCheck() {
    while (checking < CHECKING_AT_ONCE && waitingToCheck.length) {
      const job = waitingToCheck.shift();
      if (job.cancelled) continue;
      checking++;
      alreadyStored(job.form, job.file).then(function (found) {
        checking--;
        nextCheck();
        if (!job.cancelled) job.done(found);
      });
    }
  }

  async function alreadyStored(form, file) {
    try {
      const digest = await sha256(file);
      if (!digest) return null;
      const response = await fetch(form.dataset.duplicates + digest, { headers: { Accept: "application/json" } });
      return response.status === 200 ? await response.json() : null;
    } catch (error) {
      return null;  // the check is a courtesy: the upload goes ahead
    }
  }

  function duplicateTile(tile, form, file, found) {
    const meta = tileShell(tile, "duplicate", file.name);
    const text = document.createElement("p");
    text.setAttribute("role", "alert");
    text.textContent = "Already in your library";
    const actions = document.createElement("p");
    actions.className = "actions";
    const view = document.createElement("a");
    view.href = found.url;
    view.textContent = "View it";
    const again = document.createElement("button");
    again.type = "button";
    again.className = "link";
    again.textContent = "Upload anyway";
    again.addEventListener("click", function () { send(form, file, tile); });
    actions.append(view, again, dismissButton(tile, file.name));
    meta.append(text, actions);
  }

  function queueFile(form, file) {
    const grid = document.getElementById("uploads");
    const empty = document.getElementById("empty-state");
    if (empty) empty.remove();
    const tile = document.createElement("article");
    grid.prepend(tile);
    if (file.size > Number(form.dataset.maxBytes) - MULTIPART_SLACK) {
      rejectedTile(tile, file.name, form.dataset.tooLarge);
      return;
    }
    if (!isImage(file)) {
      rejectedTile(tile, file.name, form.dataset.notImage);
      return;
    }
    const meta = tileShell(tile, "uploading", file.name);
    meta.insertAdjacentHTML("beforeend",
      '<p class="line"><span class="status">Checking…</span> <button type="button" class="link cancel">Cancel</button></p>');
    const job = { form: form, file: file, cancelled: false, done: function (found) {
      if (!tile.isConnected) return;
      if (found) duplicateTile(tile, form, file, found);
      else send(form, file, tile);
    } };
    const cancel = tile.querySelector("button.cancel");
    cancel.setAttribute("aria-label", "Cancel uploading " + file.name);
    cancel.addEventListener("click", function () {
      job.cancelled = true;
      removeTile(tile);
      say("Upload of " + file.name + " cancelled.");
    });
    waitingToCheck.push(job);
    nextCheck();
  }

  function send(form, file, tile) {
    const meta = tileShell(tile, "uploading", file.name);
    tile.removeAttribute("role");
    meta.insertAdjacentHTML("beforeend",
      '<progress max="100" value="0" aria-label="Uploading"></progress>' +
      '<p class="line"><span class="status">Uploading…</span> <button type="button" class="link cancel">Cancel</button></p>');
    const data = new FormData();
    data.append("csrf_token", csrfToken());
    data.append("images", file, file.name);
    const model = form.querySelector("select[name=model]");
    if (model) data.append("model", model.value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    const bar = tile.querySelector("progress");
    const cancel = tile.querySelector("button.cancel");
    cancel.setAttribute("aria-label", "Cancel uploading " + file.name);
    cancel.addEventListener("click", function () { xhr.abort(); });
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.upload.addEventListener("load", function () { cancel.remove(); });  // sent: too late to cancel
    xhr.addEventListener("abort", function () {
      removeTile(tile);
      say("Upload of " + file.name + " cancelled.");
    });
    xhr.addEventListener("load", function () {
      const redirect = xhr.getResponseHeader("HX-Redirect");
      if (redirect) {
        window.location.assign(redirect);
        return;
      }
      if (xhr.status !== 201 && xhr.status !== 422) {
        rejectedTile(tile, file.name, serverMessage(xhr));
        return;
      }
      // 201: the new cards; 422: a tile per refused file, with the reason.
      const holder = document.createElement("div");
      holder.innerHTML = xhr.responseText;
      const nodes = Array.from(holder.children);
      tile.replaceWith(...nodes);
      nodes.forEach(function (node) {
        if (node.classList.contains("rejected")) node.querySelector(".meta").append(
          dismissButton(node, node.querySelector(".name").textContent));
        const everything = document.getElementById("bulk-all");
        if (node.querySelector("input.pick") && everything && everything.value === "1") {
          node.querySelector("input.pick").checked = true;
        }
        if (window.htmx) window.htmx.process(node);
        localTimes(node);
      });
      regroup();
    });
    xhr.addEventListener("error", function () {
      rejectedTile(tile, file.name, "Upload failed: the server could not be reached.");
    });
    xhr.send(data);
  }

  function setUpUpload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = form.querySelector("input[type=file]");
    const zone = form.querySelector(".dropzone");
    form.classList.add("js");
    function queue(files) {
      Array.from(files).forEach(function (file) { queueFile(form, file); });
      input.value = "";
    }
    input.addEventListener("change", function () { if (input.files.length) queue(input.files); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (input.files.length) queue(input.files);
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) queue(event.dataTransfer.files);
    });
  }

  // ---- Times are written in UTC by the server; shown in the viewer's own time zone. ----
  const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const monthName = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric" });
  function localTimes(root) {
    root.querySelectorAll("time[datetime][data-local]").forEach(function (node) {
      const when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when)) {
        node.title = node.textContent;
        node.textContent = localTime.format(when);
      }
      node.removeAttribute("data-local");
    });
  }

  // ---- Gallery: a heading for each month (in the viewer's time zone), across loaded pages. ----
  let regroupPending = false;
  function regroup() {
    if (regroupPending) return;
    regroupPending = true;
    window.requestAnimationFrame(function () {
      regroupPending = false;
      regroupNow();
    });
  }

  function regroupNow() {
    const grid = document.getElementById("cards");
    if (!grid) return;
    grid.querySelectorAll(":scope > .month").forEach(function (node) { node.remove(); });
    let last = null;
    grid.querySelectorAll(":scope > article.tile[data-created]").forEach(function (tile) {
      const when = new Date(tile.dataset.created);
      if (isNaN(when)) return;
      const key = when.getFullYear() + "-" + when.getMonth();
      if (key === last) return;
      last = key;
      const heading = document.createElement("h2");
      heading.className = "month";
      heading.textContent = monthName.format(when);
      tile.before(heading);
    });
  }

  // Coming back from a photo (#analysis-<id>): that photo's card in view, loading more pages
  // of the listing until it is there (at most 20).
  async function returnToCard() {
    const match = /^#(analysis-[0-9a-f]{32})$/.exec(window.location.hash);
    if (!match) return;
    for (let pages = 0; pages < 20 && !document.getElementById(match[1]); pages++) {
      const more = document.querySelector("#cards > .more[hx-get]");
      if (!more) break;
      const response = await fetch(more.getAttribute("hx-get"), { headers: { "HX-Request": "true" } });
      if (!response.ok) break;
      const holder = document.createElement("template");
      holder.innerHTML = await response.text();
      const nodes = Array.from(holder.content.children);
      more.replaceWith(...nodes);
      nodes.forEach(function (node) { if (window.htmx) window.htmx.process(node); localTimes(node); });
    }
    regroupNow();  // the month headings first: they move the cards
    const card = document.getElementById(match[1]);
    if (card) {
      card.scrollIntoView({ block: "center" });
      const name = card.querySelector("a.name");
      if (name) name.focus({ preventScroll: true });
    }
  }

  // ---- Gallery selection: tick photos (shift-click for a range, keyboard alike), or all in
  // this filter; then download them as a zip or delete them (asking first, with the count).
  function setUpSelection() {
    const form = document.getElementById("bulk");
    const grids = ["cards", "uploads"].map(function (id) { return document.getElementById(id); }).filter(Boolean);
    if (!form || !grids.length) return;
    const all = form.querySelector("#bulk-all");
    const expected = form.querySelector("#bulk-total");
    const confirmField = form.querySelector("#bulk-confirm");
    const count = form.querySelector("#bulk-count");
    const selectAll = form.querySelector("#bulk-select-all");
    let anchor = null;
    const picks = function () {
      return grids.flatMap(function (grid) { return Array.from(grid.querySelectorAll("input.pick")); });
    };
    // How many photos the filter matches now: the filter bar carries it, refreshed as photos
    // finish or go, so "select all" never says one number and acts on another.
    const total = function () {
      const bar = document.getElementById("filter-bar");
      return Number((bar && bar.dataset.total) || form.dataset.total);
    };

    function update() {
      const chosen = picks().filter(function (box) { return box.checked; }).length;
      const everything = all.value === "1";
      if (everything) picks().forEach(function (box) { box.checked = true; });  // pages loaded since
      const active = everything || chosen > 0;
      form.classList.toggle("active", active);
      grids.forEach(function (grid) { grid.classList.toggle("selecting", active); });
      form.hidden = !active && !picks().length;
      count.textContent = everything ? "All " + plural(total(), "photo", "photos") + " selected"
        : chosen ? plural(chosen, "photo", "photos") + " selected"
          : "Tick photos to download or delete them together.";
      selectAll.hidden = everything || chosen >= total();
      selectAll.textContent = "Select all " + plural(total(), "photo", "photos") + (form.dataset.narrowed ? " in this filter" : "");
    }

    grids.forEach(function (grid) {
      grid.addEventListener("click", function (event) {
        const box = event.target.closest("input.pick");
        if (!box) return;
        all.value = "0";
        const list = picks();
        if (event.shiftKey && anchor && list.indexOf(anchor) >= 0) {
          const [from, to] = [list.indexOf(anchor), list.indexOf(box)].sort(function (a, b) { return a - b; });
          list.slice(from, to + 1).forEach(function (other) { other.checked = box.checked; });
        }
        anchor = box;
        update();
      });
    });
    selectAll.addEventListener("click", function () {
      all.value = "1";
      update();
    });
    form.querySelector("#bulk-clear").addEventListener("click", function () {
      all.value = "0";
      picks().forEach(function (box) { box.checked = false; });
      update();
    });
    form.addEventListener("submit", function (event) {
      const action = event.submitter && event.submitter.value;
      const chosen = all.value === "1" ? total() : picks().filter(function (box) { return box.checked; }).length;
      expected.value = all.value === "1" ? String(total()) : "";
      confirmField.value = "0";
      if (action === "delete") {
        if (!window.confirm("Delete " + plural(chosen, "photo", "photos") + " and their results? This cannot be undone.")) {
          event.preventDefault();
          return;
        }
        confirmField.value = "1";
      }
    });
    document.addEventListener("htmx:load", update);
    document.addEventListener("htmx:afterSettle", update);
    update();
  }

  // ---- Filter bar: "more…" narrows its list of labels as one types; the bar does not refresh
  // while it is open (that would close it under the user's typing), but once it closes.
  let filterBarStale = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    const bar = event.detail.elt;
    if (bar.id === "filter-bar" && bar.querySelector(".more-labels[open]")) {
      event.preventDefault();
      filterBarStale = true;
    }
  });

  function setUpLabelSearch(root) {
    const input = root.querySelector("#label-search");
    if (!input || input.dataset.ready) return;
    input.dataset.ready = "1";
    input.closest("details").addEventListener("toggle", function (event) {
      if (!event.target.open && filterBarStale && window.htmx) {
        filterBarStale = false;
        window.htmx.trigger(document.body, "labelsChanged");
      }
    });
    const chips = Array.from(root.querySelectorAll(".more-list .chip"));
    input.addEventListener("input", function () {
      const text = input.value.trim().toLowerCase();
      chips.forEach(function (chip) { chip.hidden = text !== "" && chip.dataset.name.toLowerCase().indexOf(text) < 0; });
    });
  }

  // ---- Detail: redraw boxes from the stored detections; no new inference. ----
  const SVG = "http://www.w3.org/2000/svg";
  const MIN_LABEL_PX = 12;  // labels stay at least this tall on screen, however small the photo is drawn

  // Colours come as data attributes (the Content-Security-Policy allows no inline style).
  function paintSwatches(root) {
    root.querySelectorAll(".swatch[data-color]").forEach(function (swatch) {
      swatch.style.background = swatch.dataset.color;
    });
  }

  function readableOn(hex) {  // as the server draws it: black on light colours, white on dark
    const n = parseInt(hex.slice(1), 16);
    return ((n >> 16) & 255) + ((n >> 8) & 255) + (n & 255) > 382 ? "#000" : "#fff";
  }

  // The photo fits the window below where it starts (the page's own header and buttons).
  function fitStage(stage) {
    const top = stage.getBoundingClientRect().top + window.scrollY;
    const room = Math.max(240, window.innerHeight - Math.min(top, window.innerHeight / 2) - 16);
    stage.style.setProperty("--stage-height", room + "px");
  }

  function setUpViewer(root) {
    paintSwatches(root);
    const stage = root.querySelector("#stage");
    const overlay = root.querySelector("#overlay");
    const dataNode = root.querySelector("#detections-data");
    if (!stage || stage.dataset.ready) return;
    stage.dataset.ready = "1";
    const width = Number(stage.dataset.width);
    const height = Number(stage.dataset.height);
    stage.style.setProperty("--ratio", String(width / height));
    fitStage(stage);
    window.addEventListener("resize", function () { fitStage(stage); });
    const zoom = setUpZoom(stage, root.querySelector("#zoom"), function () { if (overlay) draw(); });
    if (!overlay || !dataNode) return;
    const data = JSON.parse(dataNode.textContent);
    const slider = root.querySelector("#conf");
    const output = root.querySelector("#conf-value");
    const count = root.querySelector("#box-count");
    const toggles = Array.from(root.querySelectorAll("input[name=class]"));
    const classRows = Array.from(root.querySelectorAll(".classes label[data-label]"));
    const noClasses = root.querySelector("#no-classes");
    const rows = Array.from(root.querySelectorAll("table.detections tbody tr"));
    const annotated = root.querySelector(".layer-annotated");
    const download = root.querySelector("#download-annotated");
    const defaultConf = slider.value;
    const line = Math.max(2, Math.round(width / 300));
    let imageTimer = null;

    function highlight(index, on) {
      overlay.querySelectorAll('g.box[data-index="' + index + '"]').forEach(function (g) { g.classList.toggle("hl", on); });
      rows.forEach(function (row) { if (row.dataset.index === String(index)) row.classList.toggle("hl", on); });
      overlay.classList.toggle("has-hl", on);
    }

    // The annotated image and its download are drawn by the server for what is shown here.
    function viewUrl(min, enabled, everything) {
      if (min.toFixed(2) === Number(defaultConf).toFixed(2) && everything) return annotated.dataset.src;
      const names = Array.from(enabled).sort().join(",");
      return annotated.dataset.src + "?conf=" + min.toFixed(2) + (everything ? "" : "&classes=" + encodeURIComponent(names));
    }

    function draw() {
      const min = Number(slider.value);
      const enabled = new Set(toggles.filter(function (t) { return t.checked; }).map(function (t) { return t.value; }));
      const above = data.detections.filter(function (d) { return d.confidence >= min; });
      const shown = above.filter(function (d) { return enabled.has(d.name); });
      // the scale the photo is drawn at (zoom included), for labels of a readable size
      const scale = (stage.getBoundingClientRect().width * zoom.scale()) / width || 1;
      const fontSize = Math.max(line * 7, MIN_LABEL_PX / scale);
      overlay.replaceChildren();
      shown.slice().sort(function (a, b) {  // small boxes last, so they are on top and can be pointed at
        return (b.box.x2 - b.box.x1) * (b.box.y2 - b.box.y1) - (a.box.x2 - a.box.x1) * (a.box.y2 - a.box.y1);
      }).forEach(function (d) {
        const color = data.colors[d.name] || "#ff3838";
        const g = document.createElementNS(SVG, "g");
        g.setAttribute("class", "box");
        g.setAttribute("data-index", d.index);
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "img");
        g.setAttribute("aria-label", d.name + " " + d.confidence.toFixed(2));
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", d.box.x1);
        rect.setAttribute("y", d.box.y1);
        rect.setAttribute("width", Math.max(0, d.box.x2 - d.box.x1));
        rect.setAttribute("height", Math.max(0, d.box.y2 - d.box.y1));
        rect.setAttribute("stroke", color);
        rect.setAttribute("stroke-width", line);
        // the label on a band of the class's colour, in black or white, whichever reads
        const label = d.name + " " + d.confidence.toFixed(2);
        const pad = fontSize * 0.25;
        const bandHeight = fontSize * 1.25;
        const top = d.box.y1 - bandHeight >= 0 ? d.box.y1 - bandHeight : d.box.y1;
        const band = document.createElementNS(SVG, "rect");
        band.setAttribute("class", "label-bg");
        band.setAttribute("x", d.box.x1);
        band.setAttribute("y", top);
        band.setAttribute("height", bandHeight);
        band.setAttribute("width", label.length * fontSize * 0.6 + 2 * pad);
        band.setAttribute("fill", color);
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("x", d.box.x1 + pad);
        text.setAttribute("y", top + fontSize);
        text.setAttribute("fill", readableOn(color));
        text.setAttribute("font-size", fontSize);
        text.textContent = label;
        const title = document.createElementNS(SVG, "title");
        title.textContent = label;
        g.append(rect, band, text, title);
        ["mouseenter", "focus"].forEach(function (name) { g.addEventListener(name, function () { highlight(d.index, true); }); });
        ["mouseleave", "blur"].forEach(function (name) { g.addEventListener(name, function () { highlight(d.index, false); }); });
        overlay.append(g);
      });
      rows.forEach(function (row) {
        row.hidden = !(Number(row.dataset.conf) >= min && enabled.has(row.dataset.label));
      });
      // the class list: only classes with a box at this confidence, with how many
      const perClass = {};
      above.forEach(function (d) { perClass[d.name] = (perClass[d.name] || 0) + 1; });
      classRows.forEach(function (label) {
        const n = perClass[label.dataset.label] || 0;
        label.hidden = n === 0;
        label.querySelector(".count").textContent = n;
      });
      if (noClasses) noClasses.hidden = above.length > 0;
      output.textContent = min.toFixed(2);
      count.textContent = plural(shown.length, "box shown", "boxes shown");
      const everything = toggles.every(function (t) { return t.checked; });
      const url = viewUrl(min, enabled, everything);
      download.href = url + (url.indexOf("?") >= 0 ? "&" : "?") + "download=1";
      annotated.alt = annotated.alt.replace(/with \d+ detected/, "with " + shown.length + " detected");
      window.clearTimeout(imageTimer);  // the image follows once the slider rests
      imageTimer = window.setTimeout(function () { if (annotated.getAttribute("src") !== url) annotated.src = url; }, 250);
    }

    rows.forEach(function (row) {
      row.addEventListener("mouseenter", function () { highlight(row.dataset.index, true); });
      row.addEventListener("mouseleave", function () { highlight(row.dataset.index, false); });
    });
    slider.addEventListener("input", draw);
    toggles.forEach(function (t) { t.addEventListener("change", draw); });
    root.querySelectorAll("button[data-view]").forEach(function (button) {
      button.addEventListener("click", function () {
        stage.dataset.view = button.dataset.view;
        root.querySelectorAll("button[data-view]").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
      });
    });
    window.addEventListener("resize", draw);
    draw();
  }

  // Zoom and pan the photo (and its boxes): wheel or pinch, double-click (or double-tap) to
  // zoom in and back, drag to move, 0 to reset. The picture always covers the stage.
  function setUpZoom(stage, layer, changed) {
    let scale = 1, x = 0, y = 0;
    const pointers = new Map();
    let pinch = null;
    const MAX = 8;

    function apply() {
      const w = stage.clientWidth, h = stage.clientHeight;
      scale = Math.min(MAX, Math.max(1, scale));
      x = Math.min(0, Math.max(w - w * scale, x));
      y = Math.min(0, Math.max(h - h * scale, y));
      layer.style.transform = "translate(" + x + "px, " + y + "px) scale(" + scale + ")";
      stage.classList.toggle("zoomed", scale > 1);
      changed();
    }
    function zoomAt(factor, clientX, clientY) {
      const box = stage.getBoundingClientRect();
      const px = clientX - box.left, py = clientY - box.top;
      const next = Math.min(MAX, Math.max(1, scale * factor));
      x = px - (px - x) * (next / scale);
      y = py - (py - y) * (next / scale);
      scale = next;
      apply();
    }
    stage.addEventListener("wheel", function (event) {
      if (scale === 1 && event.deltaY > 0) return;  // let the page scroll
      event.preventDefault();
      zoomAt(Math.exp(-event.deltaY / 300), event.clientX, event.clientY);
    }, { passive: false });
    stage.addEventListener("dblclick", function (event) {
      if (scale > 1) { scale = 1; x = 0; y = 0; apply(); } else zoomAt(2.5, event.clientX, event.clientY);
    });
    stage.addEventListener("pointerdown", function (event) {
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (pointers.size === 2) {
        const [a, b] = Array.from(pointers.values());
        pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), scale: scale };
      }
      if (scale > 1 || pointers.size === 2) stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener("pointermove", function (event) {
      const last = pointers.get(event.pointerId);
      if (!last) return;
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (pointers.size === 2 && pinch) {
        const [a, b] = Array.from(pointers.values());
        const factor = (pinch.scale * Math.hypot(a.x - b.x, a.y - b.y) / pinch.distance) / scale;
        zoomAt(factor, (a.x + b.x) / 2, (a.y + b.y) / 2);
      } else if (scale > 1) {
        x += event.clientX - last.x;
        y += event.clientY - last.y;
        apply();
      }
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      stage.addEventListener(name, function (event) {
        pointers.delete(event.pointerId);
        if (pointers.size < 2) pinch = null;
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "0" && !typing(event.target) && scale !== 1) { scale = 1; x = 0; y = 0; apply(); }
    });
    window.addEventListener("resize", apply);
    return { scale: function () { return scale; } };
  }

  // Previous / next photo of the listing (← →), back to it (Esc), unless typing or on the slider.
  function setUpStepper() {
    const links = { ArrowLeft: "#previous-photo", ArrowRight: "#next-photo", Escape: "#back-to-gallery" };
    if (!document.getElementById("back-to-gallery")) return;
    document.addEventListener("keydown", function (event) {
      if (!links[event.key] || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      if (typing(event.target, event.key) || document.querySelector("dialog[open]")) return;
      const link = document.querySelector(links[event.key]);
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    });
  }

  // ---- htmx writes that the server refuses (a stale form, a vanished photo) say why, in a
  // message that stays in view until the next request; so does a server's `showMessage` event.
  function showMessage(text) {
    const box = document.getElementById("htmx-errors");
    if (!box) return;
    const message = document.createElement("p");
    message.className = "flash flash-error";
    message.textContent = text;
    box.replaceChildren(message);
  }

  function showError(event) {
    const xhr = event.detail.xhr;
    if (xhr) showMessage(xhr.status ? serverMessage(xhr) : "The server could not be reached.");
  }

  document.addEventListener("DOMContentLoaded", function () {
    const firstBad = document.querySelector("form [aria-invalid=true]");  // a form sent back with errors
    if (firstBad) firstBad.focus();
    setUpUpload();
    setUpViewer(document);
    setUpStepper();
    setUpSelection();
    setUpLabelSearch(document);
    localTimes(document);
    regroupNow();
  });
  // After the browser's own jump to the #analysis-… anchor (which would undo the focus).
  window.addEventListener("load", function () { window.requestAnimationFrame(returnToCard); });
  document.addEventListener("htmx:load", function (event) {
    setUpViewer(event.target.closest("#detail") || document);
    setUpLabelSearch(document);
    localTimes(event.target);
    if (event.target.closest("#cards")) regroup();
  });
  // A plain form that asks first (data-confirm): deleting a run, say.
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("htmx:responseError", showError);
  document.addEventListener("htmx:sendError", showError);
  document.addEventListener("htmx:beforeRequest", function () {
    const box = document.getElementById("htmx-errors");
    if (box) box.replaceChildren();
  });
  document.body.addEventListener("showMessage", function (event) { showMessage(event.detail.value); });
})();
