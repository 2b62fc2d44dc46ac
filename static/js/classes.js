// The Run again form's class picker: the field takes several names ("person, dog"); the browser's
// suggestions complete the name being typed, after those already there, from the chosen model's
// classes (data-classes: {model: [names]}), and follow the model chosen.
const field = document.getElementById("rerun-classes-field");
const list = document.getElementById("rerun-classes");
const model = document.getElementById("rerun-model");

function suggest() {
  const classes = JSON.parse(list.dataset.classes || "{}")[model?.value || "default"] || [];
  const parts = field.value.split(",");
  const typed = parts.pop().trim().toLowerCase();
  const before = parts.map((part) => part.trim()).filter(Boolean);
  const prefix = before.length ? `${before.join(", ")}, ` : "";
  const options = classes.filter((name) => !before.includes(name) && name.toLowerCase().includes(typed))
    .slice(0, 50).map((name) => new Option("", prefix + name));
  list.replaceChildren(...options);
}

if (field && list) {
  field.addEventListener("input", suggest);
  field.addEventListener("focus", suggest);
  model?.addEventListener("change", suggest);
}
