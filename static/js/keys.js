// The keyboard: ← → step through the listing a photo was opened from, Esc goes back to it, 0
// resets the zoom; unless a field is taking the key. A form sent back with errors focuses its
// first bad field.
const LINKS = { ArrowLeft: "#previous-photo", ArrowRight: "#next-photo", Escape: "#back-to-gallery" };

function typing(target, key) {  // arrows move a slider or a select; text fields take every key
  if (target.isContentEditable || /^(SELECT|TEXTAREA)$/.test(target.tagName)) return true;
  if (target.tagName !== "INPUT") return false;
  if (target.type === "range") return key.startsWith("Arrow");  // Esc still leaves
  return !/^(checkbox|radio|button|submit)$/.test(target.type) || key.startsWith("Arrow");
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || typing(event.target, event.key)) return;
  if (event.key === "0") document.getElementById("stage")?.dispatchEvent(new Event("zoom-reset"));
  const link = LINKS[event.key] && document.querySelector(LINKS[event.key]);
  if (link) window.location.assign(link.href);
});

document.querySelector("form [aria-invalid=true]")?.focus();
