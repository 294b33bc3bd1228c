// Wires the page together. Modules: api.js (server calls), pad.js (canvas, raw capture), live.js (debounced
// guessing, one request in flight), guesses.js (the list), examples.js (real drawings as SVG).
//
// Extension point: /api/health lists `extensions`, each maybe with a `module` URL on this server; the page
// imports it and calls its exported `setup(ctx)` with the context below (the pad, the toolbar to add buttons
// to, the API client, the extension's own info, and hooks to watch guesses). quickdraw.serve.app.Extension is
// the server side of it. `window.quickdraw` exposes the same context for debugging and the browser tests.

import { createApi } from "./api.js";
import { DrawingPad } from "./pad.js";
import { LiveGuesser } from "./live.js";
import { renderGuesses } from "./guesses.js";
import { ExamplePanel } from "./examples.js";

const $ = (id) => document.getElementById(id);

async function start() {
  const api = createApi();
  const pad = new DrawingPad($("pad"));
  const list = $("guesses");
  const status = $("status");
  const panel = new ExamplePanel(api, $("examples"), $("examples-title"));
  const resultListeners = new Set();
  const ctx = {
    api, pad, toolbar: $("toolbar"), health: null, last: null,
    /** Call fn(result) after every guess result ({version, answer} | {version, error} | {version, empty}). */
    onResult: (fn) => { resultListeners.add(fn); return () => resultListeners.delete(fn); },
  };
  window.quickdraw = ctx;

  const guesser = new LiveGuesser(pad, api, (result) => {
    renderGuesses(list, status, result);
    if (result.pending) return;
    ctx.last = result;
    const top = result.answer && !result.answer.skipped && result.answer.top.length ? result.answer.top[0].class : null;
    if (!result.error) panel.show(top);
    for (const fn of resultListeners) fn(result);
  });
  ctx.guesser = guesser;

  const counts = $("counts");
  const undo = $("undo");
  const clear = $("clear");
  const refresh = () => {
    const n = pad.strokes.length;
    counts.textContent = n ? `${n} stroke${n === 1 ? "" : "s"}, ${pad.pointCount()} points` : "";
    undo.disabled = n === 0;
    clear.disabled = pad.isEmpty();
  };
  pad.onChange(refresh);
  refresh();
  undo.addEventListener("click", () => pad.undo());
  clear.addEventListener("click", () => pad.clear());
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); pad.undo(); }
  });

  try {
    const health = await api.health();
    ctx.health = health;
    const m = health.model;
    $("model").textContent = `Model ${m.version} · ${m.classes.length} classes` +
      (health.examples ? ` · examples from cache ${health.examples.cache}` : "");
    for (const ext of health.extensions || []) {
      if (!ext.module) continue;
      try {
        const mod = await import(ext.module);
        if (typeof mod.setup === "function") await mod.setup({ ...ctx, ext });
      } catch (err) {
        status.textContent = `Extension ${ext.name} failed to load: ${err.message}`;
      }
    }
  } catch (err) {
    $("model").textContent = `The server did not answer /api/health: ${err.message}`;
  }
  document.body.dataset.ready = "true";
}

start();
