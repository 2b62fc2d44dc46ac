// The gallery: coming back from a photo (#analysis-<id>), that photo's card in view and focused,
// pages of the listing loaded until it is there (the "more" link's own request, at most 20); the
// filter bar's "more…" list narrowed as one types; thumbnails with their boxes or plain (a
// cookie, so the server renders the next cards the same way).
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
