// The drawing pad: pointer events (mouse, pen, touch) in, the dataset's raw format out.
//
// A stroke is [[x...], [y...], [t...]]: x, y in CSS pixels of the canvas (not rounded: the server simplifies
// them exactly as `fetch --format raw --simplify` does, and rounding here would make the page disagree with
// the CLI on the same points), t in milliseconds since the drawing's first point, as in full/raw/*.ndjson.

export class DrawingPad {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.strokes = [];      // finished strokes
    this.current = null;    // the stroke being drawn, or null
    this.pointerId = null;  // one pointer draws at a time (a second finger is ignored)
    this.t0 = null;         // time of the drawing's first point
    this.version = 0;       // bumped on every change; guesses say which version they belong to
    this.listeners = new Set();
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    canvas.addEventListener("lostpointercapture", (e) => this.up(e));
  }

  /** Call fn(pad, kind) after every change; kind is "point", "stroke", "undo", "clear" or "add". */
  onChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  changed(kind) {
    this.version += 1;
    for (const fn of this.listeners) fn(this, kind);
  }

  point(e) {
    // Content-box coordinates (inside the border), the frame the canvas is drawn in.
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left - this.canvas.clientLeft;
    const y = e.clientY - r.top - this.canvas.clientTop;
    if (this.t0 === null) this.t0 = e.timeStamp;
    return [x, y, Math.max(0, Math.round(e.timeStamp - this.t0))];
  }

  push([x, y, t]) {
    this.current[0].push(x); this.current[1].push(y); this.current[2].push(t);
  }

  down(e) {
    if (this.pointerId !== null) return;
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    this.pointerId = e.pointerId;
    try { this.canvas.setPointerCapture(e.pointerId); } catch (_) { /* synthetic or already-gone pointer */ }
    this.current = [[], [], []];
    this.push(this.point(e));
    this.redraw();
    this.changed("point");
  }

  move(e) {
    if (e.pointerId !== this.pointerId || this.current === null) return;
    e.preventDefault();
    // Coalesced events: the points the browser merged into this one (real input at 120+ Hz); a synthetic
    // event has none and stands for itself.
    const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
    for (const ev of events.length ? events : [e]) this.push(this.point(ev));
    this.redraw();
    this.changed("point");
  }

  up(e) {
    if (e.pointerId !== this.pointerId || this.current === null) return;
    if (e.type === "pointerup") {
      const [x, y] = this.point(e);
      const n = this.current[0].length;
      if (this.current[0][n - 1] !== x || this.current[1][n - 1] !== y) this.push(this.point(e));
    }
    this.strokes.push(this.current);
    this.current = null;
    this.pointerId = null;
    this.redraw();
    this.changed("stroke");
  }

  /** The drawing in the raw ndjson layout, including the stroke being drawn. */
  drawing() {
    const all = this.current ? [...this.strokes, this.current] : this.strokes;
    return all.map((s) => [s[0].slice(), s[1].slice(), s[2].slice()]);
  }

  isEmpty() { return this.strokes.length === 0 && this.current === null; }

  pointCount() { return this.drawing().reduce((n, s) => n + s[0].length, 0); }

  undo() {
    if (this.current !== null || this.strokes.length === 0) return false;
    this.strokes.pop();
    if (this.strokes.length === 0) this.t0 = null;
    this.redraw();
    this.changed("undo");
    return true;
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this.t0 = null;
    this.redraw();
    this.changed("clear");
  }

  /** For extensions (e.g. a model finishing the drawing): append raw strokes [[xs], [ys], [ts]]. */
  addStrokes(strokes) {
    for (const s of strokes) this.strokes.push([s[0].slice(), s[1].slice(), (s[2] || s[0].map(() => 0)).slice()]);
    this.redraw();
    this.changed("add");
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    this.canvas.height = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.redraw();
  }

  redraw() {
    const { ctx, canvas } = this;
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.restore();
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#1b1b1b";
    for (const s of this.current ? [...this.strokes, this.current] : this.strokes) {
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[1][0]);
      if (s[0].length === 1) ctx.lineTo(s[0][0] + 0.01, s[1][0]);
      for (let i = 1; i < s[0].length; i++) ctx.lineTo(s[0][i], s[1][i]);
      ctx.stroke();
    }
  }
}
