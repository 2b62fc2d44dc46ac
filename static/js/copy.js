// Copy buttons: `data-copy="<id>"` copies that field's value (a new API key, a share link) and
// says so in the button for a moment. The clipboard API needs a secure context (HTTPS or
// localhost); elsewhere the field's text is selected and copied the old way, or left selected.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  const field = button && document.getElementById(button.dataset.copy);
  if (!field) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch (error) {
    field.focus();
    field.select();
    copied = document.execCommand?.("copy") ?? false;
  }
  const label = button.dataset.label ?? button.textContent;
  button.dataset.label = label;
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { button.textContent = label; }, 2000);
});
