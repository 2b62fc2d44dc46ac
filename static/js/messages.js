// htmx's requests: the server puts what went wrong in the message area (HX-Retarget); here only
// what it cannot say (it could not be reached), and the area is cleared by the next request the
// person makes (not by the page refreshing itself: a card or page fetching itself once its run is
// done, the filter bar). The server writes times in the viewer's time zone, which the browser
// tells it here.
document.cookie = `tz=${Intl.DateTimeFormat().resolvedOptions().timeZone}; path=/; max-age=31536000; SameSite=Lax`;

const box = () => document.getElementById("htmx-errors");
const BACKGROUND = "[data-going], [data-background]";
const clear = () => {
  box()?.replaceChildren();
  delete box()?.dataset.unreachable;
};
document.addEventListener("htmx:beforeRequest", (event) => {
  if (!event.detail.elt?.closest?.(BACKGROUND)) clear();
});
document.addEventListener("htmx:afterRequest", (event) => {  // reached again: "could not be reached" goes
  if (event.detail.successful && box()?.dataset.unreachable) clear();
});
document.addEventListener("htmx:sendError", () => {
  box()?.replaceChildren(document.getElementById("unreachable").content.cloneNode(true));
  if (box()) box().dataset.unreachable = "1";
});
