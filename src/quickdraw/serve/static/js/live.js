// Live guessing: ask the server while the user draws, debounced, with at most one request in flight.
//
// After a change the request waits `delay` ms of quiet (a debounce), but never more than `maxWait` ms
// while the user keeps drawing, so guesses also update mid-stroke. A change during a request is not lost:
// when the answer comes back, the newest drawing is sent. Each answer is tagged with the pad version it
// was computed for (data-version on the list), so nobody mistakes an old answer for the current one.

export class LiveGuesser {
  constructor(pad, api, onResult, { delay = 120, maxWait = 250, topK = 3 } = {}) {
    Object.assign(this, { pad, api, onResult, delay, maxWait, topK });
    this.timer = null;
    this.firstChange = null;  // when the oldest unsent change happened
    this.inFlight = false;
    this.dirty = false;
    pad.onChange(() => this.changed());
  }

  changed() {
    this.dirty = true;
    const now = performance.now();
    if (this.firstChange === null) this.firstChange = now;
    if (this.pad.isEmpty()) {  // nothing to ask: show the empty state at once
      this.cancel();
      this.onResult({ version: this.pad.version, empty: true });
      return;
    }
    if (this.inFlight) return;  // sent when the current request ends
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.delay, this.firstChange + this.maxWait - now));
    this.timer = setTimeout(() => this.send(), wait);
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
    this.dirty = false;
    this.firstChange = null;
  }

  async send() {
    this.timer = null;
    if (this.inFlight || !this.dirty) return;
    if (this.pad.isEmpty()) { this.cancel(); return; }
    this.dirty = false;
    this.firstChange = null;
    const version = this.pad.version;
    const drawing = this.pad.drawing();
    this.inFlight = true;
    this.onResult({ version, pending: true });
    let result;
    try {
      result = { version, drawing, answer: await this.api.predict(drawing, this.topK) };
    } catch (err) {
      result = { version, drawing, error: err };
    } finally {
      this.inFlight = false;
    }
    // An answer for a drawing that was cleared meanwhile is dropped; any other is shown (live), then the
    // newest drawing is sent if it changed while this request was out.
    if (!this.pad.isEmpty()) this.onResult(result);
    if (this.dirty && !this.pad.isEmpty()) {
      this.firstChange = performance.now() - this.maxWait;  // waited long enough already
      this.changed();
    }
  }
}
