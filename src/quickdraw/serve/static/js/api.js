// The page's only way to the server: same-origin JSON calls to the documented API (README "quickdraw serve").
// It counts requests per endpoint (sent, in flight, most in flight at once), so that the live guesser's
// "one prediction in flight at most" can be checked from outside (the browser test does).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function createApi(base = "") {
  const stats = {};  // endpoint name -> { sent, inFlight, maxInFlight }

  async function call(path, init) {
    const name = path.split("?")[0];
    const st = stats[name] || (stats[name] = { sent: 0, inFlight: 0, maxInFlight: 0 });
    st.sent += 1;
    st.inFlight += 1;
    st.maxInFlight = Math.max(st.maxInFlight, st.inFlight);
    try {
      const res = await fetch(base + path, { ...init, cache: "no-store", credentials: "same-origin" });
      let body = null;
      try { body = await res.json(); } catch (_) { body = null; }
      if (!res.ok) throw new ApiError(res.status, body);
      return body;
    } finally {
      st.inFlight -= 1;
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
