// htmx's requests: the server puts what went wrong in the message area (HX-Retarget); here only
// what it cannot say (it could not be reached), and the area is cleared by the next request. The
// server writes times in the viewer's time zone, which the browser tells it here.
document.documentElement.classList.add("js");
document.cookie = `tz=${Intl.DateTimeFormat().resolvedOptions().timeZone}; path=/; max-age=31536000; SameSite=Lax`;

const box = () => document.getElementById("htmx-errors");
document.addEventListener("htmx:beforeRequest", () => box()?.replaceChildren());
document.addEventListener("htmx:sendError", () => {
  box()?.replaceChildren(document.getElementById("unreachable").content.cloneNode(true));
});
