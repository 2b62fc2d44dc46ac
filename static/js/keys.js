// The keyboard: ← → step through the listing a photo was opened from, Esc goes back to it, + and
// - zoom, 0 resets the zoom; unless a field is taking the key. A form sent back with errors focuses its
// first bad field.
const LINKS = { ArrowLeft: "#previous-photo", ArrowRight: "#next-photo", Escape: "#back-to-gallery" };
const ZOOM = { "0": "zoom-reset", "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", _: "zoom-out" };

function typing(target, key) {  // arrows move a slider or a select; text fields take every key
  if (target.isContentEditable || /^(SELECT|TEXTAREA)$/.test(target.tagName)) return true;
  if (target.tagName !== "INPUT") return false;
  if (target.type === "range") return key.startsWith("Arrow");  // Esc still leaves
  return !/^(checkbox|radio|button|submit)$/.test(target.type) || key.startsWith("Arrow");
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target, event.key)) return;
  const stage = ZOOM[event.key] && document.getElementById("stage");
  if (stage) {  // "+" comes with Shift on most keyboards
    event.preventDefault();
    stage.dispatchEvent(new Event(ZOOM[event.key]));
    return;
  }
  if (event.shiftKey) return;
  const link = LINKS[event.key] && document.querySelector(LINKS[event.key]);
  if (link) window.location.assign(link.href);
});

document.querySelector("form [aria-invalid=true]")?.focus();
