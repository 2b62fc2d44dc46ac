// Photos being detected, told the moment they are done: one event stream per tab (Server-Sent
// Events, htmx's sse extension) while the page shows something going ([data-going]: a card, the
// detail page). The stream says `finished` with a run's id; the element showing it fetches itself
// once (its own hx-get, on the `finished` event). The server ends the stream (`idle`) when nothing
// is left to wait for; it is opened again when something new is going (an upload's cards). While
// no stream can be had (the server serves its most, an old browser), going elements poll instead.
const POLL_MS = 1500;
const home = document.getElementById("live-events");
let state = "closed";  // closed | opening | open | down
let poller = null;

function going() { return [...document.querySelectorAll("[data-going]")]; }

function connect() {
  if (!home || state === "opening" || state === "open" || !going().length) return;
  if (!window.EventSource) return poll();
  const watched = [...new Set(going().map((node) => node.dataset.going))];
  const source = document.createElement("div");
  source.setAttribute("hx-ext", "sse");
  source.setAttribute("sse-connect", `${home.dataset.url}?watch=${watched.join(",")}`);
  source.setAttribute("sse-swap", "finished");
  source.setAttribute("hx-swap", "none");
  source.setAttribute("sse-close", "idle");
  source.dataset.watched = watched.join(",");
  home.replaceChildren(source);  // a stream before it is closed by the extension (nodeReplaced)
  state = "opening";
  window.htmx.process(source);
}

function poll() {
  if (poller) return;
  poller = setInterval(() => {
    if (state === "open") return stopPolling();
    going().forEach((node) => window.htmx.trigger(node, "poll"));
    if (!going().length) stopPolling();
  }, POLL_MS);
}

function stopPolling() { clearInterval(poller); poller = null; }

document.addEventListener("htmx:sseBeforeMessage", (event) => {
  event.preventDefault();  // nothing to swap: the element fetches itself
  const { id, status } = JSON.parse(event.detail.data);
  document.querySelectorAll(`[data-going="${id}"]`).forEach((node) => {
    if (status !== "deleted") return window.htmx.trigger(node, "finished");
    if (node.matches(".tile")) node.remove();  // deleted elsewhere: nothing left to show or wait for
    else node.removeAttribute("data-going");
  });
});

document.addEventListener("htmx:sseOpen", (event) => {
  state = "open";
  stopPolling();
  const watched = new Set((event.target.dataset.watched || "").split(","));
  // going since the stream's address was made (it reopened by itself): their end may have been missed
  going().filter((node) => !watched.has(node.dataset.going)).forEach((node) => window.htmx.trigger(node, "poll"));
});

document.addEventListener("htmx:sseClose", () => {
  state = "closed";
  setTimeout(connect, 0);  // still something going (a new upload meanwhile, or the stream's time was up)
});

document.addEventListener("htmx:sseError", (event) => {
  if (event.detail.source?.readyState === 2) {  // CLOSED: refused (the server's most) or gone; retried by the extension
    state = "down";
    poll();
  }
});

document.addEventListener("htmx:load", (event) => {  // new content (an upload's cards, a card swapped)
  if (event.target.closest?.("#live-events")) return;
  if (state === "down") poll();
  else connect();
});

connect();
