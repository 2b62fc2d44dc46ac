// Page behaviour: per-file uploads with progress, the detail page's live box overlay, and a
// message when an htmx write is refused. Everything works without it, only plainer.
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  // ---- Upload: one request per file, so each file has its own progress bar and result. ----
  // Not htmx (which sends a form as one request), so the script says who it is with its own
  // header, reads the HTTP status, and follows HX-Redirect (an expired session: log in again).
  const MULTIPART_SLACK = 4096; // bytes of form fields and part headers around the file itself

  function rejectedTile(tile, name, message) {
    tile.className = "tile rejected";
    tile.setAttribute("role", "alert");
    tile.innerHTML = '<div class="meta"><p class="name"></p><p class="error"></p></div>';
    tile.querySelector(".name").textContent = name;
    tile.querySelector(".error").textContent = message;
  }

  function serverMessage(xhr) {
    const text = new DOMParser().parseFromString(xhr.responseText || "", "text/html").body.textContent.trim();
    if (text) return text;
    return xhr.status === 413 ? "The file is too large." : "The upload was refused (HTTP " + xhr.status + ").";
  }

  function uploadFile(form, file) {
    const grid = document.getElementById("cards");
    const empty = document.getElementById("empty-state");
    if (empty) empty.remove();
    const tile = document.createElement("article");
    tile.className = "tile uploading";
    tile.innerHTML =
      '<div class="meta"><p class="name"></p>' +
      '<progress max="100" value="0" aria-label="Uploading"></progress>' +
      '<p class="line"><span class="status">Uploading…</span></p></div>';
    tile.querySelector(".name").textContent = file.name;
    grid.prepend(tile);
    if (file.size > Number(form.dataset.maxBytes) - MULTIPART_SLACK) {
      rejectedTile(tile, file.name, form.dataset.tooLarge);
      return;
    }

    const data = new FormData();
    data.append("csrf_token", csrfToken());
    data.append("images", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    const bar = tile.querySelector("progress");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
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
      nodes.forEach(function (node) { if (window.htmx) window.htmx.process(node); });
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
    function send(files) {
      Array.from(files).forEach(function (file) { uploadFile(form, file); });
      input.value = "";
    }
    input.addEventListener("change", function () { if (input.files.length) send(input.files); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (input.files.length) send(input.files);
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) send(event.dataTransfer.files);
    });
  }

  // ---- Detail: redraw boxes from the stored detections; no new inference. ----
  const SVG = "http://www.w3.org/2000/svg";

  // Times are written in UTC by the server; shown in the viewer's own time zone.
  const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
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

  // Colours come as data attributes (the Content-Security-Policy allows no inline style).
  function paintSwatches(root) {
    root.querySelectorAll(".swatch[data-color]").forEach(function (swatch) {
      swatch.style.background = swatch.dataset.color;
    });
  }

  function setUpViewer(root) {
    paintSwatches(root);
    const stage = root.querySelector("#stage");
    const overlay = root.querySelector("#overlay");
    const dataNode = root.querySelector("#detections-data");
    if (!stage || !overlay || !dataNode || stage.dataset.ready) return;
    stage.dataset.ready = "1";
    const data = JSON.parse(dataNode.textContent);
    const slider = root.querySelector("#conf");
    const output = root.querySelector("#conf-value");
    const count = root.querySelector("#box-count");
    const toggles = Array.from(root.querySelectorAll("input[name=class]"));
    const rows = Array.from(root.querySelectorAll("table.detections tbody tr"));
    const width = Number(stage.dataset.width);
    const line = Math.max(2, Math.round(width / 300));

    function draw() {
      const min = Number(slider.value);
      const enabled = new Set(toggles.filter(function (t) { return t.checked; }).map(function (t) { return t.value; }));
      const shown = data.detections.filter(function (d) { return d.confidence >= min && enabled.has(d.name); });
      overlay.replaceChildren();
      shown.forEach(function (d) {
        const color = data.colors[d.name] || "#ff3838";
        const g = document.createElementNS(SVG, "g");
        g.setAttribute("class", "box");
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", d.box.x1);
        rect.setAttribute("y", d.box.y1);
        rect.setAttribute("width", Math.max(0, d.box.x2 - d.box.x1));
        rect.setAttribute("height", Math.max(0, d.box.y2 - d.box.y1));
        rect.setAttribute("stroke", color);
        rect.setAttribute("stroke-width", line);
        rect.setAttribute("fill", "none");
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("x", d.box.x1 + line);
        text.setAttribute("y", Math.max(d.box.y1 - line, line * 7));
        text.setAttribute("fill", color);
        text.setAttribute("font-size", line * 7);
        text.textContent = d.name + " " + d.confidence.toFixed(2);
        const title = document.createElementNS(SVG, "title");
        title.textContent = text.textContent;
        g.append(rect, text, title);
        overlay.append(g);
      });
      rows.forEach(function (row) {
        row.hidden = !(Number(row.dataset.conf) >= min && enabled.has(row.dataset.label));
      });
      output.textContent = min.toFixed(2);
      count.textContent = shown.length + (shown.length === 1 ? " box shown" : " boxes shown");
    }

    slider.addEventListener("input", draw);
    toggles.forEach(function (t) { t.addEventListener("change", draw); });
    root.querySelectorAll("[data-view]").forEach(function (button) {
      if (button === stage) return;
      button.addEventListener("click", function () {
        stage.dataset.view = button.dataset.view;
        root.querySelectorAll("button[data-view]").forEach(function (b) {
          b.setAttribute("aria-pressed", String(b === button));
        });
      });
    });
    draw();
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
    localTimes(document);
  });
  document.addEventListener("htmx:load", function (event) {
    setUpViewer(event.target.closest("#detail") || document);
    localTimes(event.target);
  });
  document.addEventListener("htmx:responseError", showError);
  document.addEventListener("htmx:sendError", showError);
  document.addEventListener("htmx:beforeRequest", function () {
    const box = document.getElementById("htmx-errors");
    if (box) box.replaceChildren();
  });
  document.body.addEventListener("showMessage", function (event) { showMessage(event.detail.value); });
})();
