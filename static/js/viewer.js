// A run's boxes, drawn by the server: shown at the slider's confidence and for the classes
// ticked, a box lighting its row of the table (and a row its box); the annotated image and its
// download follow what is shown; the buttons switch between live boxes, that image and the original.
// Labels: a label that would cover a more confident one's is folded into its box (shown while the
// box is pointed at or focused), again at each zoom; "Labels" hides them all the same way.
function setUp(stage) {
  const overlay = stage.querySelector("#overlay");
  const slider = document.getElementById("conf");
  if (!overlay || !slider) return;
  const boxes = Array.from(overlay.querySelectorAll("g.box"));
  const rows = Array.from(document.querySelectorAll("table.detections tbody tr"));
  const toggles = Array.from(document.querySelectorAll("input[name=class]"));
  const annotated = stage.querySelector(".layer-annotated");
  const download = document.getElementById("download-annotated");
  const initial = Number(slider.value).toFixed(2);
  const labelsToggle = document.getElementById("labels-toggle");
  let timer = null, pending = false;

  function unclutter() {  // most confident first: a label overlapping one already placed folds away
    pending = false;
    boxes.forEach((g) => g.classList.remove("crowded"));
    if (stage.dataset.view !== "boxes" || overlay.classList.contains("no-labels")) return;
    const placed = [];
    boxes.filter((g) => !g.classList.contains("off"))
      .sort((a, b) => Number(b.dataset.conf) - Number(a.dataset.conf))
      .forEach((g) => {
        const r = g.querySelector(".label")?.getBoundingClientRect();
        if (!r || !r.width) return;
        if (placed.some((p) => r.left < p.right && p.left < r.right && r.top < p.bottom && p.top < r.bottom)) {
          g.classList.add("crowded");
        } else {
          placed.push(r);
        }
      });
  }
  function unclutterSoon() {
    if (!pending) requestAnimationFrame(unclutter);
    pending = true;
  }
  overlay.addEventListener("zoomed", unclutterSoon);
  addEventListener("resize", unclutterSoon);
  function showLabels(on) {
    overlay.classList.toggle("no-labels", !on);
    labelsToggle?.setAttribute("aria-pressed", String(on));
    unclutterSoon();
  }
  labelsToggle?.addEventListener("click", () => {
    const on = labelsToggle.getAttribute("aria-pressed") !== "true";
    try { localStorage.setItem("labels", on ? "shown" : "hidden"); } catch (error) { /* private mode */ }
    showLabels(on);
  });
  try { showLabels(localStorage.getItem("labels") !== "hidden"); } catch (error) { showLabels(true); }

  function show() {
    const min = Number(slider.value);
    const enabled = new Set(toggles.filter((t) => t.checked).map((t) => t.value));
    const above = {};
    boxes.forEach((g) => {
      const high = Number(g.dataset.conf) >= min;
      if (high) above[g.dataset.label] = (above[g.dataset.label] || 0) + 1;
      g.classList.toggle("off", !(high && enabled.has(g.dataset.label)));
    });
    rows.forEach((row) => { row.hidden = !(Number(row.dataset.conf) >= min && enabled.has(row.dataset.label)); });
    document.querySelectorAll(".classes label[data-label]").forEach((label) => {
      label.hidden = !above[label.dataset.label];
      label.querySelector(".count").textContent = above[label.dataset.label] || 0;
    });
    const shown = boxes.filter((g) => !g.classList.contains("off")).length;
    document.getElementById("no-classes")?.toggleAttribute("hidden", Object.keys(above).length > 0);
    document.getElementById("conf-value").textContent = min.toFixed(2);
    document.getElementById("box-count").textContent = `${shown} ${shown === 1 ? "box" : "boxes"} shown`;
    const names = toggles.every((t) => t.checked) ? null : Array.from(enabled).sort().join(",");
    const url = min.toFixed(2) === initial && names === null ? annotated.dataset.src
      : `${annotated.dataset.src}?conf=${min.toFixed(2)}${names === null ? "" : "&classes=" + encodeURIComponent(names)}`;
    download.href = url + (url.includes("?") ? "&" : "?") + "download=1";
    annotated.alt = annotated.alt.replace(/with \d+ detected/, `with ${shown} detected`);
    clearTimeout(timer);  // the image follows once the slider rests
    timer = setTimeout(() => { if (annotated.getAttribute("src") !== url) annotated.src = url; }, 250);
    unclutterSoon();
  }

  function light(index, on) {
    if (index === undefined) return;
    boxes.concat(rows).forEach((node) => { if (node.dataset.index === index) node.classList.toggle("hl", on); });
    overlay.classList.toggle("has-hl", on);
  }
  const table = document.querySelector("table.detections");
  for (const [name, on] of [["pointerover", true], ["pointerout", false], ["focusin", true], ["focusout", false]]) {
    overlay.addEventListener(name, (event) => light(event.target.closest("g.box")?.dataset.index, on));
    table?.addEventListener(name, (event) => light(event.target.closest("tbody tr")?.dataset.index, on));
  }
  slider.addEventListener("input", show);
  toggles.forEach((t) => t.addEventListener("change", show));
  document.querySelectorAll("button[data-view]").forEach((button) => button.addEventListener("click", () => {
    stage.dataset.view = button.dataset.view;
    document.querySelectorAll("button[data-view]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    unclutterSoon();
  }));
  show();
}

document.addEventListener("htmx:load", (event) => {
  const stage = event.target.querySelector("#stage:not([data-ready])");
  if (!stage) return;
  stage.dataset.ready = "1";
  setUp(stage);
});
