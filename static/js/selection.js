// The gallery's selection: tick photos (shift-click for a range, the keyboard alike), or all that
// the filter matches, then run them again, download them as a zip or delete them (htmx asks first).
const form = document.getElementById("bulk");
const grids = ["cards", "uploads"].map((id) => document.getElementById(id)).filter(Boolean);
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

if (form && grids.length) {
  const all = form.querySelector("#bulk-all");
  const picks = () => grids.flatMap((grid) => Array.from(grid.querySelectorAll("input.pick")));
  // how many the filter matches now: the filter bar carries it, refreshed as photos finish or go
  const total = () => Number(document.getElementById("filter-bar")?.dataset.total ?? form.dataset.total);
  let anchor = null;

  function update() {
    const everything = all.value === "1";
    if (everything) picks().forEach((box) => { box.checked = true; });  // pages loaded since
    const chosen = everything ? total() : picks().filter((box) => box.checked).length;
    form.classList.toggle("active", chosen > 0);
    grids.forEach((grid) => grid.classList.toggle("selecting", chosen > 0));
    form.hidden = !chosen && !picks().length;
    form.querySelector("#bulk-total").value = everything ? String(total()) : "";
    form.querySelector("#bulk-count").textContent = everything ? `All ${plural(total(), "photo", "photos")} selected`
      : chosen ? `${plural(chosen, "photo", "photos")} selected` : "Tick photos to download or delete them together.";
    const selectAll = form.querySelector("#bulk-select-all");
    selectAll.hidden = everything || chosen >= total() || total() > Number(form.dataset.limit);  // more than one action takes
    selectAll.textContent = `Select all ${plural(total(), "photo", "photos")}${form.dataset.narrowed ? " in this filter" : ""}`;
    form.querySelector("#bulk-delete").setAttribute("hx-confirm",
      `Move ${plural(chosen, "photo", "photos")} to the Trash? You can restore them for ${form.dataset.trashDays} days.`);
  }

  grids.forEach((grid) => grid.addEventListener("click", (event) => {
    const box = event.target.closest("input.pick");
    if (!box) return;
    all.value = "0";
    const list = picks();
    if (event.shiftKey && list.includes(anchor)) {
      const [from, to] = [list.indexOf(anchor), list.indexOf(box)].sort((a, b) => a - b);
      list.slice(from, to + 1).forEach((other) => { other.checked = box.checked; });
    }
    anchor = box;
    update();
  }));
  form.querySelector("#bulk-select-all").addEventListener("click", () => { all.value = "1"; update(); });
  form.querySelector("#bulk-clear").addEventListener("click", () => {
    all.value = "0";
    picks().forEach((box) => { box.checked = false; });
    update();
  });
  document.addEventListener("htmx:load", update);  // new cards, a refreshed filter bar
}
