// The gallery: coming back from a photo (#analysis-<id>), that photo's card in view and focused,
// pages of the listing loaded until it is there (the "more" link's own request, at most 20); the
// filter bar's "more…" list narrowed as one types; thumbnails with their boxes or plain (a
// cookie, so the server renders the next cards the same way); arrows, Enter and Space in the grid;
// "Dates & order" folded; one tile in the Tab order at a time; a long press; the scrubber's year.
const wanted = /^#(analysis-[0-9a-f]{32})$/.exec(location.hash)?.[1];
let pages = 0;

function seek() {
  const card = document.getElementById(wanted);
  const more = document.querySelector("#cards > .more[hx-get]");
  if (!card && more && pages++ < 20) return window.htmx.trigger(more, "seek");
  card?.scrollIntoView({ block: "center" });
  card?.querySelector("a.name").focus({ preventScroll: true });
}

if (wanted) {
  addEventListener("load", () => requestAnimationFrame(seek));  // after the browser's own jump to the anchor
  document.addEventListener("htmx:afterSettle", (event) => { if (event.target.closest("#cards")) seek(); });
}

function narrow() {  // as one types, and when the list comes back from the server (it is refreshed as it opens)
  const text = document.getElementById("label-search")?.value.trim().toLowerCase() || "";
  document.querySelectorAll(".more-list .chip").forEach((chip) => {
    chip.hidden = text !== "" && !chip.dataset.name.toLowerCase().includes(text);
  });
}
document.addEventListener("input", (event) => { if (event.target.id === "label-search") narrow(); });
document.addEventListener("htmx:load", (event) => { if (event.target.matches(".more-list")) narrow(); });

document.addEventListener("click", (event) => {
  const toggle = event.target.closest("#boxes-toggle");
  if (!toggle) return;
  const boxed = toggle.getAttribute("aria-pressed") !== "true";
  toggle.setAttribute("aria-pressed", String(boxed));
  document.cookie = `thumbnails=${boxed ? "boxed" : "plain"}; path=/; max-age=31536000; SameSite=Lax`;
  document.querySelectorAll(".tile img[data-boxed]").forEach((img) => {
    img.src = boxed ? img.dataset.boxed : img.dataset.plain;
  });
});

// The keyboard in the grid, on a photo's name (or its tick box): ← → the previous or next photo,
// ↑ ↓ the one above or below as laid out, Enter opens it (a link's own), Space selects it.
const tiles = () => Array.from(document.querySelectorAll("#uploads .tile, #cards .tile"))
  .filter((tile) => tile.offsetParent && tile.querySelector("a.name"));

function below(from, tile, down) {  // the nearest row that way, then the closest column in it
  const here = from.getBoundingClientRect(), there = tile.getBoundingClientRect();
  const rows = down ? there.top - here.top : here.top - there.top;
  return rows > here.height / 2 ? [rows, Math.abs(there.left - here.left)] : null;
}

function neighbour(tile, key) {  // the tile an arrow key goes to from `tile`, or undefined
  const all = tiles(), index = all.indexOf(tile);
  if (key === "ArrowLeft" || key === "ArrowRight") return all[index + (key === "ArrowRight" ? 1 : -1)];
  const ranked = all.map((other) => [below(tile, other, key === "ArrowDown"), other])
    .filter(([rank]) => rank).sort(([a], [b]) => a[0] - b[0] || a[1] - b[1]);
  return ranked[0]?.[1];
}

document.addEventListener("htmx:afterSettle", (event) => {
  if (!step || !event.target.closest?.("#cards")) return;
  const { tile, key } = step;
  step = null;
  focusTile(neighbour(tile, key));
});

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const tile = event.target.closest?.(".tile");
  if (!tile || !event.target.matches("a.name, input.pick") || !tile.closest("#cards, #uploads")) return;
  if (event.key === " " && event.target.matches("a.name")) {
    event.preventDefault();  // not the page's scroll: select it
    tile.querySelector("input.pick")?.click();
    return;
  }
  if (!["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(event.key)) return;
  const next = neighbour(tile, event.key);
  event.preventDefault();
  const more = document.querySelector("#cards > .more[hx-get]");
  if (!next && more && (event.key === "ArrowDown" || event.key === "ArrowRight")) {
    step = { tile, key: event.key };  // past the last row loaded: the next page, then on
    window.htmx.trigger(more, "seek");
    return;
  }
  focusTile(next);
});

let step = null;  // an arrow key waiting for the next page
function focusTile(tile) {
  const link = tile?.querySelector("a.name");
  link?.focus({ preventScroll: true });
  link?.closest(".tile").scrollIntoView({ block: "nearest" });
}

// "Dates & order": the filter form shown or folded away (open when the page came with one of them set).
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("#range-toggle");
  if (!toggle) return;
  const open = document.getElementById("range").classList.toggle("open");
  toggle.setAttribute("aria-expanded", String(open));
  if (open) document.querySelector("#range input, #range select")?.focus();
});

// One tile of the grid is in the Tab order at a time (the one last focused; the first at the
// start): Tab goes through its tick box, name, labels and actions and then leaves the grid, so
// the selection bar, the filters and the page's foot are a few keys away from any photo.
const grid = document.getElementById("cards");
let current = null;

function roving(root) {
  const scope = root.matches?.(".tile") ? [root] : Array.from(root.querySelectorAll?.(".tile") ?? []);
  scope.forEach((tile) => {
    if (!tile.closest("#cards")) return;
    if (!current || !current.isConnected) current = tile;
    const here = tile === current || tile.id === current.id;
    if (here) current = tile;
    tile.querySelectorAll("a[href]:not(.thumb), button, input, select").forEach((el) => { el.tabIndex = here ? 0 : -1; });
  });
}

let successor = null, hadFocus = false;  // where the Tab order (and the focus) goes when its tile is swapped
document.addEventListener("htmx:beforeSwap", (event) => {
  const tile = event.detail.target?.closest?.("#cards .tile");
  if (!tile || tile !== current) return;
  const all = Array.from(grid.querySelectorAll(".tile")), index = all.indexOf(tile);
  successor = { id: tile.id, after: all[index + 1] ?? all[index - 1] };
  hadFocus = tile.contains(document.activeElement);
});
document.addEventListener("htmx:afterSettle", () => {
  if (!successor) return;
  const { id, after } = successor;
  successor = null;
  const again = document.getElementById(id);  // the same photo, refreshed; else the one after it
  const next = again?.closest("#cards") ? again : after?.isConnected ? after : grid.querySelector(".tile");
  if (!next) return;
  current = next;
  roving(next);
  if (hadFocus && !next.contains(document.activeElement)) next.querySelector("a.name")?.focus({ preventScroll: true });
});

if (grid) {
  roving(grid);
  document.addEventListener("htmx:load", (event) => roving(event.target));
  grid.addEventListener("focusin", (event) => {
    const tile = event.target.closest(".tile");
    if (!tile || tile === current) return;
    const before = current;
    current = tile;
    if (before?.isConnected) roving(before);
    roving(tile);
  });
}

// A long press on a photo (touch) shows its name, labels and actions instead of opening it.
let press = null;
document.addEventListener("touchstart", (event) => {
  const tile = event.target.closest?.(".photos-page .grid .tile");
  if (!tile || event.touches.length > 1) return;
  const { clientX: x, clientY: y } = event.touches[0];
  press = { tile, x, y, timer: setTimeout(() => {
    document.querySelectorAll(".tile.peek").forEach((other) => other !== tile && other.classList.remove("peek"));
    tile.classList.toggle("peek");
    press.done = true;
  }, 500) };
}, { passive: true });
document.addEventListener("touchmove", (event) => {
  const touch = event.touches[0];
  if (press && Math.hypot(touch.clientX - press.x, touch.clientY - press.y) > 10) clearTimeout(press.timer);
}, { passive: true });
document.addEventListener("touchend", (event) => {
  if (!press) return;
  clearTimeout(press.timer);
  if (press.done && event.cancelable) event.preventDefault();  // no click: the photo stays in the grid
  press = null;
});
document.addEventListener("contextmenu", (event) => {
  if (event.target.closest?.(".photos-page .grid .tile .thumb")) event.preventDefault();  // the long press is ours
});

// The scrubber marks the year in view.
const scrubber = document.querySelector(".scrubber");
if (scrubber && grid) {
  let ticking = false;
  const mark = () => {
    ticking = false;
    const headings = Array.from(grid.querySelectorAll(".month"));
    const seen = headings.filter((h) => h.getBoundingClientRect().top < innerHeight / 3).pop() ?? headings[0];
    const year = /\d{4}/.exec(seen?.textContent ?? "")?.[0];
    scrubber.querySelectorAll("a").forEach((link) => {
      if (link.dataset.year === year) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  };
  mark();
  addEventListener("scroll", () => {
    if (ticking) return;
    ticking = true;
    requestAnimationFrame(mark);
  }, { passive: true });
}

// A photo uploaded on this page shows under "Just added": not a second time in its month as
// pages load below.
document.addEventListener("htmx:load", (event) => {
  const loaded = event.target.matches?.(".tile") ? [event.target] : Array.from(event.target.querySelectorAll?.(".tile") ?? []);
  loaded.forEach((tile) => {
    if (tile.closest("#cards") && tile.id && document.querySelector(`#uploads #${tile.id}`)) tile.remove();
  });
});

// While photos are selected, a click (or tap) on a photo selects it too, as in a photo app; its
// name still opens it. Opening a photo first marks it in the address (#analysis-…), so the
// browser's Back comes to it.
document.addEventListener("click", (event) => {
  const thumb = event.target.closest?.(".photos-page .grid .tile a.thumb");
  if (!thumb) return;
  const tile = thumb.closest(".tile");
  if (tile.closest(".grid.selecting") && tile.querySelector("input.pick")) {
    event.preventDefault();
    tile.querySelector("input.pick").click();
    return;
  }
  if (tile.id) history.replaceState(history.state, "", `#${tile.id}`);
});
document.addEventListener("click", (event) => {
  const name = event.target.closest?.(".photos-page .grid .tile a.name");
  if (name?.closest(".tile").id) history.replaceState(history.state, "", `#${name.closest(".tile").id}`);
});
document.addEventListener("touchstart", (event) => {  // a tap elsewhere puts a long-pressed photo back
  document.querySelectorAll(".tile.peek").forEach((tile) => { if (!tile.contains(event.target)) tile.classList.remove("peek"); });
}, { passive: true });

// A photo's Delete answered, the next photo slides into its place: a second click there within
// half a second (a double click) is not taken as that photo's Delete.
let deletedAt = 0;
document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.target.closest?.("#cards .tile") && event.target.getAttribute?.("hx-post")?.includes("/delete")) {
    deletedAt = Date.now();
  }
});
document.addEventListener("click", (event) => {
  if (event.target.closest?.("#cards .tile button.danger") && Date.now() - deletedAt < 500) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// "Dates & order" sends only what is filled in (no empty from= and to=).
document.getElementById("range")?.addEventListener("submit", (event) => {
  event.target.querySelectorAll("input[type=date]").forEach((input) => { input.disabled = !input.value; });
});
