// Real drawings of the top class from the cache, drawn as SVG polylines built with DOM calls (no markup
// strings anywhere, so neither a class name nor a coordinate can become an element).

const SVG = "http://www.w3.org/2000/svg";

export function drawingSvg(strokes, title) {
  const svg = document.createElementNS(SVG, "svg");
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const [xs, ys] of strokes) {
    for (const x of xs) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); }
    for (const y of ys) { minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
  }
  const side = Math.max(maxX - minX, maxY - minY, 1);
  const pad = side * 0.06;
  svg.setAttribute("viewBox", `${minX - pad} ${minY - pad} ${side + 2 * pad} ${side + 2 * pad}`);
  svg.setAttribute("role", "img");
  const t = document.createElementNS(SVG, "title");
  t.textContent = title;
  svg.append(t);
  for (const [xs, ys] of strokes) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", xs.map((x, i) => `${Number(x)},${Number(ys[i])}`).join(" "));
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
  }
  return svg;
}

export class ExamplePanel {
  constructor(api, box, title, { n = 3 } = {}) {
    Object.assign(this, { api, box, title, n });
    this.shown = null;
    this.cache = new Map();  // class -> drawings (a class's examples never change while the server runs)
  }

  async show(cls) {
    if (cls === this.shown) return;
    this.shown = cls;
    if (cls === null) { this.box.replaceChildren(); this.title.hidden = true; return; }
    let drawings = this.cache.get(cls);
    if (drawings === undefined) {
      try { drawings = (await this.api.examples(cls, this.n)).drawings; } catch (_) { drawings = []; }
      this.cache.set(cls, drawings);
    }
    if (this.shown !== cls) return;  // the top class changed while we waited
    this.title.hidden = drawings.length === 0;
    this.title.textContent = `Real drawings of “${cls}”`;
    this.box.replaceChildren(...drawings.map((d, i) => drawingSvg(d, `${cls} #${i + 1}`)));
    this.box.dataset.class = cls;
  }
}
