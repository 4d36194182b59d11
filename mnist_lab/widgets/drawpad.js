// The drawing pad's view: a canvas the user draws on, and the kernel's answer as ten bars.
// Each finished stroke goes to the kernel as a list of [x, y] canvas points (the `strokes` trait); the kernel
// inks the strokes itself, as `mnist-lab draw` does, so no pixel ever has to come back from the page.
function render({ model, el }) {
  const size = model.get("size"), pen = model.get("pen");
  el.classList.add("mnist-pad");
  el.innerHTML = `
    <div style="display:flex;gap:16px;align-items:flex-start;font-family:sans-serif">
      <div>
        <canvas class="mnist-pad-canvas" width="${size}" height="${size}"
          style="border:1px solid #888;background:#fff;cursor:crosshair;touch-action:none"></canvas>
        <div><button class="mnist-pad-clear" style="width:100%;margin-top:6px">Clear</button></div>
      </div>
      <div>
        <div class="mnist-pad-guess" style="font-size:16px;margin-bottom:8px;min-width:240px"></div>
        <div class="mnist-pad-bars"></div>
        <div class="mnist-pad-model" style="font-size:11px;color:#666;margin-top:6px;max-width:320px"></div>
      </div>
    </div>`;
  const canvas = el.querySelector("canvas"), ctx = canvas.getContext("2d");
  ctx.lineWidth = pen; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#000";
  let current = null;

  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [Math.round((e.clientX - r.left) * size / r.width), Math.round((e.clientY - r.top) * size / r.height)];
  };
  const dot = ([x, y]) => { ctx.beginPath(); ctx.arc(x, y, pen / 2, 0, 2 * Math.PI); ctx.fillStyle = "#000"; ctx.fill(); };
  const redraw = () => {
    ctx.clearRect(0, 0, size, size);
    for (const s of model.get("strokes")) {
      ctx.beginPath(); s.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
      s.forEach(dot);
    }
  };
  canvas.addEventListener("pointerdown", (e) => {
    current = [point(e)]; canvas.setPointerCapture(e.pointerId); dot(current[0]);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    const p = point(e), q = current[current.length - 1];
    ctx.beginPath(); ctx.moveTo(q[0], q[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    current.push(p);
  });
  const finish = () => {
    if (!current) return;
    model.set("strokes", [...model.get("strokes"), current]);
    model.save_changes();
    current = null;
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  el.querySelector(".mnist-pad-clear").addEventListener("click", () => {
    model.set("strokes", []); model.save_changes(); redraw();
  });

  const show = () => {
    const probs = model.get("probs"), best = probs.indexOf(Math.max(...probs));
    el.querySelector(".mnist-pad-guess").textContent = model.get("guess");
    el.querySelector(".mnist-pad-model").textContent = "model: " + model.get("model_name");
    el.querySelector(".mnist-pad-bars").innerHTML = probs.map((p, d) => `
      <div style="display:flex;align-items:center;gap:6px;font-size:12px;height:20px">
        <span style="width:10px">${d}</span>
        <span style="display:inline-block;width:200px;height:14px;border:1px solid #bbb">
          <span style="display:block;height:100%;width:${(100 * p).toFixed(1)}%;
            background:${p > 0 && d === best ? "#d9534f" : "#5b8def"}"></span></span>
        <span>${(100 * p).toFixed(0)}%</span></div>`).join("");
  };
  model.on("change:probs", show);
  model.on("change:guess", show);
  model.on("change:model_name", show);
  model.on("change:strokes", () => { if (!current) redraw(); });
  show();
  redraw();
}
export default { render };
