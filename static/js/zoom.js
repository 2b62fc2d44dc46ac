// Zoom and pan the photo with its boxes: wheel or pinch, double-click (or double-tap) to zoom in
// and back, drag to move (never selecting the picture), + and - to zoom, 0 to reset (keys.js);
// on a touch screen, a swipe at full view goes to the previous or next photo. The picture always
// covers the stage, which fits the window below where it starts; labels stay readable (12 px at
// least) however small it is shown.
const MAX = 8;
const MIN_LABEL_PX = 12;
const STEP = 1.5;  // a key's zoom
const SWIPE_PX = 60;  // a swipe: this far across, mostly sideways

function setUp(stage) {
  const layer = stage.querySelector("#zoom");
  const overlay = stage.querySelector("#overlay");
  const width = Number(stage.dataset.width);
  const pointers = new Map();
  let scale = 1, x = 0, y = 0, pinch = null, swipe = null;
  stage.style.setProperty("--ratio", String(width / Number(stage.dataset.height)));
  stage.querySelectorAll("img").forEach((img) => { img.draggable = false; });

  function apply() {
    const w = stage.clientWidth, h = stage.clientHeight;
    scale = Math.min(MAX, Math.max(1, scale));
    x = Math.min(0, Math.max(w - w * scale, x));
    y = Math.min(0, Math.max(h - h * scale, y));
    layer.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    stage.classList.toggle("zoomed", scale > 1);
    stage.dataset.scale = scale.toFixed(3);
    const shown = (w * scale) / width || 1;  // screen pixels per photo pixel
    overlay?.style.setProperty("--label-k", String(Math.max(1, MIN_LABEL_PX / (overlay.dataset.font * shown))));
    overlay?.dispatchEvent(new Event("zoomed"));
  }
  function zoomAt(next, clientX, clientY) {
    const box = stage.getBoundingClientRect(), px = clientX - box.left, py = clientY - box.top;
    next = Math.min(MAX, Math.max(1, next));
    x = px - (px - x) * (next / scale);
    y = py - (py - y) * (next / scale);
    scale = next;
    apply();
  }
  function zoomAtCentre(next) {
    const box = stage.getBoundingClientRect();
    zoomAt(next, box.left + box.width / 2, box.top + box.height / 2);
  }
  function fit() {
    const top = stage.getBoundingClientRect().top + scrollY;
    stage.style.setProperty("--stage-height", `${Math.max(240, innerHeight - Math.min(top, innerHeight / 2) - 16)}px`);
    apply();
  }

  stage.addEventListener("wheel", (event) => {
    if (scale === 1 && event.deltaY > 0) return;  // let the page scroll
    event.preventDefault();
    zoomAt(scale * Math.exp(-event.deltaY / 300), event.clientX, event.clientY);
  }, { passive: false });
  stage.addEventListener("dblclick", (event) => zoomAt(scale > 1 ? 1 : 2.5, event.clientX, event.clientY));
  stage.addEventListener("zoom-reset", () => { scale = 1; apply(); });
  stage.addEventListener("zoom-in", () => zoomAtCentre(scale * STEP));
  stage.addEventListener("zoom-out", () => zoomAtCentre(scale / STEP));
  stage.addEventListener("dragstart", (event) => event.preventDefault());
  stage.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    if (event.pointerType === "mouse") event.preventDefault();  // a drag moves the photo, never selects it
    pointers.set(event.pointerId, event);
    const [a, b] = pointers.values();
    if (b) pinch = { distance: Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY), scale };
    swipe = !b && scale === 1 && event.pointerType === "touch" ? { x: event.clientX, y: event.clientY } : null;
    if (scale > 1 || b) stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    pointers.set(event.pointerId, event);
    const [a, b] = pointers.values();
    if (b && pinch) {
      const distance = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
      zoomAt((pinch.scale * distance) / pinch.distance, (a.clientX + b.clientX) / 2, (a.clientY + b.clientY) / 2);
    } else if (scale > 1) {
      x += event.clientX - last.clientX;
      y += event.clientY - last.clientY;
      apply();
    }
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
    if (swipe && event.type === "pointerup" && scale === 1) {
      const dx = event.clientX - swipe.x, dy = event.clientY - swipe.y;
      const link = Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)
        && document.querySelector(dx > 0 ? "#previous-photo" : "#next-photo");
      if (link?.href) window.location.assign(link.href);
    }
    swipe = null;
  };
  ["pointerup", "pointercancel"].forEach((name) => stage.addEventListener(name, release));
  addEventListener("resize", fit);
  fit();
}

document.addEventListener("htmx:load", (event) => {
  const stage = event.target.querySelector("#stage:not([data-zoomable])");
  if (!stage) return;
  stage.dataset.zoomable = "1";
  setUp(stage);
});
