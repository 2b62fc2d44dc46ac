// The upload queue: each photo sent on its own request, with its own progress, answer and Cancel.
// The browser checks first what it can (size, type, already in the library: the server answers
// that with a tile to show, or 204); the tiles are the page's templates and the server's answers.
const form = document.getElementById("upload-form");
const queue = document.getElementById("uploads");
const IMAGE = /^image\/(jpeg|png|webp|bmp|tiff|heic|heif)$|\.(jpe?g|jfif|png|webp|bmp|dib|tiff?|heic|heif)$/i;
const SLACK = 4096;  // bytes of form fields and part headers around the file itself
const files = new WeakMap();  // tile → its file
let checks = Promise.resolve();  // photos are read and hashed one at a time, as their turn comes

function tile(template, file) {
  const node = document.getElementById(template).content.firstElementChild.cloneNode(true);
  node.querySelectorAll("[data-name]").forEach((element) => { element.textContent = file.name; });
  node.querySelectorAll("[data-label]").forEach((element) => {
    element.setAttribute("aria-label", `${element.dataset.label} ${file.name}`);
  });
  files.set(node, file);
  return node;
}

function rejected(node, reason) {
  const refused = tile("tile-rejected", files.get(node));
  refused.querySelector(".error").textContent = reason;
  node.replaceWith(refused);
}

// What the person chose and what has gone: said under the form, and asked before leaving the page
// while some are still to be sent (they would be lost). A new choice after all were sent starts over.
// Screen readers hear the line once all are answered (it changes with every photo).
const counted = new WeakSet();  // tiles to be sent, or sent, of the count
let chosen = 0;
let sent = 0;
let failed = 0;  // answered, but not stored: the tile says why

function count(node, change) {
  if (change > 0) counted.add(node);
  else if (!counted.delete(node)) return;  // not (or no longer) of the count
  chosen += change;
  progress();
}

function answered(node, ok) {
  if (!counted.delete(node)) return;
  if (ok) sent += 1;
  else failed += 1;
  progress();
}

const unsent = () => chosen - sent - failed;

function progress() {
  const line = document.getElementById("upload-progress");
  if (!line) return;
  line.hidden = chosen === 0;
  const said = `${sent} of ${chosen} photos sent${failed ? ` (${failed} could not be: see below)` : ""}.`;
  line.textContent = unsent() > 0 ? `${said} Stay on this page until all are.` : said;
  if (chosen > 0 && unsent() === 0) document.getElementById("upload-status").textContent = said;
}

function add(chosenFiles) {  // the tiles in the order chosen, on top: the first one is sent first
  document.getElementById("empty-state")?.remove();
  if (unsent() === 0) chosen = sent = failed = 0;
  const nodes = chosenFiles.map((file) => tile("tile-uploading", file));
  queue.querySelector(".month").after(...nodes);  // under "Just added", the first chosen on top
  nodes.forEach((node) => {
    const file = files.get(node);
    window.htmx.process(node);
    if (file.size > Number(form.dataset.maxBytes) - SLACK) rejected(node, form.dataset.tooLarge);
    else if (!IMAGE.test(file.type) && !IMAGE.test(file.name)) rejected(node, form.dataset.notImage);
    else {
      count(node, +1);
      checks = checks.then(() => node.isConnected && check(node));
    }
  });
}

async function check(node) {
  const file = files.get(node);
  let answer = null;
  try {  // a courtesy (no digest outside a secure context): the upload goes ahead whatever happens
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
    const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
    answer = await fetch(`${form.dataset.duplicates}${hex}?name=${encodeURIComponent(file.name)}`,
      { headers: { "HX-Request": "true" } });
  } catch (error) { /* send it */ }
  if (!node.isConnected) return;
  if (answer?.status !== 200) return send(node);
  const question = document.createElement("template");  // "Already in your library": view it, or upload anyway
  question.innerHTML = await answer.text();
  count(node, -1);
  files.set(question.content.firstElementChild, file);
  node.replaceWith(question.content);
}

const AT_ONCE = 2;  // uploads in flight (the server takes UPLOADS_AT_ONCE of an account at once)
const waiting = [];  // tiles whose turn has not come
let sending = 0;

function send(node) {
  if (sending >= AT_ONCE) {
    waiting.push(node);
    return;
  }
  sending += 1;
  node.dataset.inFlight = "1";
  const transfer = new DataTransfer();
  transfer.items.add(files.get(node));
  node.querySelector("input[type=file]").files = transfer.files;
  node.classList.add("sending");
  node.querySelector(".status").textContent = "Uploading…";
  window.htmx.trigger(node.querySelector("form"), "send");
}

function finished(node) {  // an upload's request ended, however: the next one's turn
  if (!node || node.dataset.inFlight !== "1") return;
  delete node.dataset.inFlight;
  sending -= 1;
  while (waiting.length && sending < AT_ONCE) {
    const next = waiting.shift();
    if (next.isConnected) send(next);
  }
}

function remove(node, said) {  // the keyboard focus goes on to the next tile, else the file picker
  const next = node.nextElementSibling || node.previousElementSibling;
  const focused = node.contains(document.activeElement);
  node.remove();
  if (focused) (next?.querySelector("a, button") || document.getElementById("images")).focus();
  document.getElementById("upload-status").textContent = said || "";
}

function clicked(event) {
  const button = event.target.closest("button[data-action]");
  const node = button?.closest(".tile");
  if (node && button.dataset.action === "send") {  // "Upload anyway"
    const again = tile("tile-uploading", files.get(node));
    node.replaceWith(again);
    window.htmx.process(again);
    if (unsent() === 0) chosen = sent = failed = 0;
    count(again, +1);
    send(again);
  } else if (node && button.dataset.action === "cancel") {
    count(node, -1);
    remove(node, `Upload of ${files.get(node).name} cancelled.`);  // first: an aborted request is no answer
    document.body.dispatchEvent(new CustomEvent("htmx:abort", { detail: { elt: node.querySelector("form") } }));
    finished(node);
  } else if (node) remove(node);
}

if (form && queue) {
  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector(".dropzone");  // the file input covers it: a drop lands there too
  input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
  window.addEventListener("beforeunload", (event) => {
    if (unsent() <= 0) return;
    event.preventDefault();  // the browser asks whether to leave
    event.returnValue = "Some photos have not been sent yet.";  // (older browsers' way of asking)
  });
  ["dragenter", "dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => {
    zone.classList.toggle("over", name === "dragenter");
  }));
  queue.addEventListener("click", clicked);
  queue.addEventListener("htmx:xhr:progress", (event) => {
    const node = event.target.closest(".tile");
    if (!event.detail.lengthComputable || !node) return;
    node.querySelector("progress").value = Math.round((event.detail.loaded / event.detail.total) * 100);
    if (event.detail.loaded >= event.detail.total) node.querySelector(".cancel")?.remove();  // too late
  });
  queue.addEventListener("htmx:beforeSwap", (event) => {  // a deferred upload keeps its tile: sent again
    if (event.detail.xhr.status === 429) event.detail.shouldSwap = false;
  });
  queue.addEventListener("htmx:afterRequest", (event) => {  // an answer that is no tile: said on the tile
    // (the form's tile: swapped out by a tile of the answer, it is no longer in the page)
    const node = event.detail.requestConfig?.elt?.closest(".tile.uploading");
    finished(node);
    if (event.detail.xhr.status !== 429) answered(node, event.detail.successful);  // 429: sent again
    if (!node?.isConnected || event.detail.successful) return;
    if (event.detail.xhr.status === 429) {  // too many at once (another tab, say): again in a moment
      const seconds = Number(event.detail.xhr.getResponseHeader("Retry-After")) || 1;
      node.querySelector(".status").textContent = "Waiting for the others…";
      document.getElementById("htmx-errors").replaceChildren();
      setTimeout(() => node.isConnected && send(node), seconds * 1000);
      return;
    }
    const page = new DOMParser().parseFromString(event.detail.xhr.responseText || "", "text/html");
    rejected(node, page.body.textContent.trim() || document.getElementById("unreachable").content.textContent.trim());
    document.getElementById("htmx-errors").replaceChildren();  // said on the tile: not twice
  });
}
