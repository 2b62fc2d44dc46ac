// Page behaviour: per-file uploads with progress, the detail page's live box overlay,
// and confirmation before destructive forms. Everything works without it, only plainer.
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function escapeHtml(text) {
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  // ---- Upload: one request per file, so each file has its own progress bar and result. ----
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

    const data = new FormData();
    data.append("csrf_token", csrfToken());
    data.append("images", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    const bar = tile.querySelector("progress");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", function () {
      let html = xhr.responseText;
      if (!/^\s*<article/.test(html)) {
        const reason = xhr.status === 413 ? "The file is too large." : "The upload was refused.";
        html = '<article class="tile rejected" role="alert"><div class="meta"><p class="name">' +
          escapeHtml(file.name) + "</p>" + (html.trim() || '<p class="error">' + reason + "</p>") +
          "</div></article>";
      }
      const holder = document.createElement("div");
      holder.innerHTML = html;
      const nodes = Array.from(holder.children);
      tile.replaceWith(...nodes);
      nodes.forEach(function (node) { if (window.htmx) window.htmx.process(node); });
    });
    xhr.addEventListener("error", function () {
      tile.classList.add("rejected");
      tile.querySelector(".status").textContent = "Upload failed: the server could not be reached.";
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

  function setUpViewer(root) {
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

  function setUpConfirm(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.confirmReady) return;
      form.dataset.confirmReady = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function setUp(root) {
    setUpViewer(root);
    setUpConfirm(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpUpload();
    setUp(document);
  });
  document.addEventListener("htmx:load", function (event) { setUp(event.target.closest("#detail") || document); });
})();
