// "Finish my drawing": the page side of quickdraw.serve.sketch (served at /ext/sketch/complete.js when
// `quickdraw serve --sketch-checkpoint` is given). setup(ctx) adds a button and a temperature choice to the
// toolbar; a click sends the pad's raw drawing to POST /api/complete, animates the continuation the
// Sketch-RNN decoder sampled (in the accent colour, point by point), then appends it to the pad as ordinary
// strokes -- so Undo removes it and the live guesser judges the finished drawing.
//
// State for tests and debugging: the button's data-state ("idle" | "busy" | "done" | "error") and
// window.quickdraw.sketch ({ last: the answer, animating }).

const ANIM_POINTS_PER_FRAME = 2;

export function setup(ctx) {
  const { pad, api, toolbar, ext } = ctx;
  const button = document.createElement("button");
  button.id = "finish";
  button.type = "button";
  button.textContent = "Finish it";
  const learned = (ext.classes || []).join(", ");
  button.title = `Let the Sketch-RNN model${learned ? ` (trained on ${learned})` : ""} finish the drawing`;
  button.dataset.state = "idle";

  const temp = document.createElement("select");
  temp.id = "finish-temperature";
  temp.title = "How adventurous the model is (its sampling temperature)";
  for (const [label, value] of [["tidy", "0.2"], ["normal", "0.4"], ["wild", "0.8"]]) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = label;
    if (value === "0.4") opt.selected = true;
    temp.append(opt);
  }
  const note = document.createElement("span");
  note.id = "finish-status";
  note.className = "muted";
  note.setAttribute("role", "status");
  toolbar.append(button, temp, note);

  const state = { last: null, animating: false };
  ctx.sketch = state;
  if (window.quickdraw) window.quickdraw.sketch = state;

  const setState = (s, text) => {
    button.dataset.state = s;
    button.disabled = s === "busy";
    note.textContent = text || "";
  };

  // From scratch (empty pad) the answer is in the 0..255 frame of the data: scale it onto the canvas.
  const placeOnCanvas = (strokes, fromScratch) => {
    if (!fromScratch) return strokes;
    const side = Math.min(pad.canvas.clientWidth, pad.canvas.clientHeight);
    const k = (side - 40) / 255;
    return strokes.map((s) => [s[0].map((x) => 20 + x * k), s[1].map((y) => 20 + y * k), s[2] || s[0].map(() => 0)]);
  };

  const animate = (strokes) => new Promise((resolve) => {
    const total = strokes.reduce((n, s) => n + s[0].length, 0);
    const reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    let shown = reduced ? total : 0;
    state.animating = true;
    const frame = () => {
      shown = Math.min(total, shown + ANIM_POINTS_PER_FRAME);
      pad.redraw();
      const g = pad.ctx;
      g.save();
      g.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2a6df4";
      let left = shown;
      for (const s of strokes) {
        if (left <= 0) break;
        const n = Math.min(left, s[0].length);
        left -= n;
        g.beginPath();
        g.moveTo(s[0][0], s[1][0]);
        if (n === 1) g.lineTo(s[0][0] + 0.01, s[1][0]);
        for (let i = 1; i < n; i++) g.lineTo(s[0][i], s[1][i]);
        g.stroke();
      }
      g.restore();
      if (shown < total) requestAnimationFrame(frame);
      else { state.animating = false; resolve(); }
    };
    requestAnimationFrame(frame);
  });

  button.addEventListener("click", async () => {
    if (state.animating || button.dataset.state === "busy") return;
    const fromScratch = pad.isEmpty();
    setState("busy", fromScratch ? "drawing from scratch…" : "finishing…");
    try {
      const answer = await api.postJson("/api/complete", {
        drawing: pad.drawing(), n: 1, temperature: Number(temp.value),
      });
      state.last = answer;
      const strokes = placeOnCanvas(answer.sketches[0].strokes, fromScratch);
      await animate(strokes);
      if (strokes.length) pad.addStrokes(strokes);
      const s = answer.sketches[0];
      setState("done", strokes.length
        ? `added ${strokes.length} stroke${strokes.length === 1 ? "" : "s"}${s.ended ? "" : " (cut at the length limit)"}`
        : "the model thinks it is finished");
    } catch (err) {
      setState("error", `could not finish: ${err.message}`);
    }
  });
}
