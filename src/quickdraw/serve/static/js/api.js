// The page's only way to the server: same-origin JSON calls to the documented API (README "quickdraw serve").
// It counts requests in flight so that the live guesser (and the browser test) can check there is one at most.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function createApi(base = "") {
  const stats = { sent: 0, inFlight: 0, maxInFlight: 0 };

  async function call(path, init) {
    stats.sent += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    try {
      const res = await fetch(base + path, { ...init, cache: "no-store", credentials: "same-origin" });
      let body = null;
      try { body = await res.json(); } catch (_) { body = null; }
      if (!res.ok) throw new ApiError(res.status, body);
      return body;
    } finally {
      stats.inFlight -= 1;
    }
  }

  return {
    stats,
    health: () => call("/api/health"),
    /** drawing: ndjson `drawing` layout, raw [[xs], [ys], [ts]] or simplified [[xs], [ys]] per stroke. */
    predict: (drawing, topK = 3) => call("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ drawing, top_k: topK }),
    }),
    examples: (cls, n = 3) => call(`/api/examples?class=${encodeURIComponent(cls)}&n=${n}`),
    /** For extensions: POST JSON to one of their own routes. */
    postJson: (path, doc) => call(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc),
    }),
  };
}
