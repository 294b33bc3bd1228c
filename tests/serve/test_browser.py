"""``quickdraw serve`` in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by
Selenium draws real drawings from ../shared onto the page by dispatching pointer events along their strokes.

What is checked: the top-1 the page shows is what ``quickdraw predict`` (the CLI, as a subprocess) says on the
same drawing, both on the drawing as the page sent it and on the original raw line; the page captured exactly
the points dispatched; guesses update while drawing with at most one request in flight; the top class's real
drawings appear as SVG; undo and clear work (with mouse, pen and touch pointers); class names with markup are
shown as text; and the page makes no request to any other host and logs no error (a CSP violation would be one).
A screenshot of the page with its guesses is saved under the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import torch

from tests.serve.conftest import WORDS, Server, Trained, start_server, stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: The drawing is placed in this many CSS px of the 480 px canvas.
FIT = 440.0
MARGIN = 20.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        msg = "chromium and chromedriver are needed (apt-get install chromium chromium-driver; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # CI installs them: a missing browser there is a broken setup, not a skip
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    # Every request the page makes (CDP Network events) and its console, for the no-other-host and no-error checks.
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# ------------------------------------------------------------------------------------------------ helpers

DISPATCH = r"""
const [strokes, pointerType, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const c = document.getElementById("pad");
const r = c.getBoundingClientRect();
const left = r.left + c.clientLeft, top = r.top + c.clientTop;
const fire = (type, x, y, buttons) => c.dispatchEvent(new PointerEvent(type, {
  bubbles: true, cancelable: true, composed: true, pointerId: 7, pointerType, isPrimary: true,
  clientX: left + x, clientY: top + y, button: type === "pointermove" ? -1 : 0, buttons,
  pressure: buttons ? 0.5 : 0, width: 1, height: 1,
}));
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
(async () => {
  let events = 0;
  for (const [xs, ys] of strokes) {
    fire("pointerdown", xs[0], ys[0], 1); events++;
    for (let i = 1; i < xs.length; i++) {
      fire("pointermove", xs[i], ys[i], 1); events++;
      if (events % 4 === 0) await sleep(16);  // ~4 points a frame: the live guesser gets to run mid-stroke
    }
    fire("pointerup", xs[xs.length - 1], ys[ys.length - 1], 0);
    await sleep(40);
  }
  done(events);
})();
"""

SETTLED = r"""
const l = document.getElementById("guesses"), q = window.quickdraw;
return q && q.guesser && !q.guesser.inFlight && !q.guesser.dirty && q.guesser.timer === null
  && Number(l.dataset.version) === q.pad.version && ["done", "skipped", "empty"].includes(l.dataset.state);
"""


STATE = r"""
const l = document.getElementById("guesses"), q = window.quickdraw;
return {ready: document.body.dataset.ready, version: q && q.pad.version, list: l && {...l.dataset},
        guesser: q && q.guesser && {inFlight: q.guesser.inFlight, dirty: q.guesser.dirty, timer: q.guesser.timer},
        status: document.getElementById("status").textContent, model: document.getElementById("model").textContent};
"""


def wait_for(driver: Any, script: str, *args: Any, timeout: float = 30) -> None:
    """Wait until ``script`` returns true; on a timeout, fail with the page's state and console."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script, *args))
    except TimeoutException:
        pytest.fail(f"page did not get there in {timeout} s: {driver.execute_script(STATE)}; "
                    f"console: {driver.get_log('browser')}")


def open_page(driver: Any, server: Server) -> None:
    driver.get(server.url + "/")
    # 60 s: the first page of a cold Chromium on a busy 2-core machine is slow.
    wait_for(driver, "return document.body.dataset.ready === 'true' && !!window.quickdraw && !!window.quickdraw.health",
             timeout=60)


def fit_to_canvas(drawing: list[list[list[float]]]) -> list[list[list[float]]]:
    """The raw strokes moved and scaled into the canvas by a power of two: both are exact in floating point,
    so the page's points simplify to exactly the same integers as the original's (simplification aligns and
    rescales anyway)."""
    xs = [v for s in drawing for v in s[0]]
    ys = [v for s in drawing for v in s[1]]
    ext = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    scale = 1.0
    while ext * scale > FIT:
        scale /= 2
    while ext * scale * 2 <= FIT:
        scale *= 2
    x0, y0 = min(xs), min(ys)
    return [[[MARGIN + (x - x0) * scale for x in s[0]], [MARGIN + (y - y0) * scale for y in s[1]]] for s in drawing]


def draw(driver: Any, strokes: list[list[list[float]]], pointer: str = "mouse") -> int:
    events = int(driver.execute_async_script(DISPATCH, strokes, pointer))
    wait_settled(driver)
    return events


def wait_settled(driver: Any) -> None:
    wait_for(driver, SETTLED)


def shown(driver: Any) -> list[tuple[str, str]]:
    return [tuple(x) for x in driver.execute_script(  # type: ignore[misc]
        "return [...document.querySelectorAll('#guesses li')].map(li => "
        "[li.querySelector('.class').textContent, li.querySelector('.prob').textContent]);")]


def cli_predict(checkpoint: Path, drawings: list[Any], tmp: Path) -> list[dict[str, Any]]:
    """``quickdraw predict --json`` as a user runs it (a subprocess), one line per drawing."""
    src = tmp / f"cli-{len(list(tmp.glob('cli-*')))}.ndjson"
    src.write_bytes(b"".join(orjson.dumps({"drawing": d}) + b"\n" for d in drawings))
    p = subprocess.run([sys.executable, "-m", "quickdraw", "predict", "--checkpoint", str(checkpoint), str(src),
                        "--top-k", "3", "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    return list(json.loads(p.stdout))


def first_raw(shared: Path, word: str) -> list[list[list[float]]]:
    line = (shared / "full" / "raw" / f"{word}.ndjson").read_bytes().splitlines()[0]
    return list(orjson.loads(line)["drawing"])


def page_requests(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


# -------------------------------------------------------------------------------------------------- tests


def test_drawing_real_drawings_shows_the_top1_quickdraw_predict_gives(
        browser: Any, server: Server, trained: Trained, tmp_path: Path) -> None:
    open_page(browser, server)
    browser.get_log("performance")  # start the request log from here (the page load is checked below)
    originals, sent, results = [], [], []
    for i, word in enumerate(WORDS):
        raw = first_raw(trained.shared, word)
        strokes = fit_to_canvas(raw)
        if i:
            browser.find_element("id", "clear").click()
            wait_settled(browser)
        browser.execute_script("delete window.quickdraw.api.stats['/api/predict'];")
        events = draw(browser, strokes, ("mouse", "pen", "touch", "mouse")[i])
        state = browser.execute_script(
            "const q = window.quickdraw; return {drawing: q.last.drawing, answer: q.last.answer,"
            " stats: q.api.stats['/api/predict'],"
            " strokes: q.pad.strokes.length, state: document.getElementById('guesses').dataset.state};")
        # The page captured exactly the dispatched points (raw layout, t in ms rising from 0) and sent them all.
        got = state["drawing"]
        assert [[s[0], s[1]] for s in got] == strokes, word
        assert all(len(s) == 3 and s[2] == sorted(s[2]) and s[2][0] >= 0 for s in got) and got[0][2][0] == 0
        assert state["strokes"] == len(raw) and sum(len(s[0]) for s in got) == events
        # Live and debounced: several guesses while drawing, far fewer requests than pointer events, one at a time.
        assert state["stats"]["maxInFlight"] == 1
        assert 2 <= state["stats"]["sent"] < events / 3, state["stats"]
        assert state["state"] == "done", state
        originals.append(raw)
        sent.append(got)
        results.append((shown(browser), state["answer"]))
        if i == 0:
            check_examples(browser, shown(browser)[0][0])
            shot = tmp_path / "serve-page.png"
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    cli_original = cli_predict(trained.checkpoint, originals, tmp_path)
    cli_sent = cli_predict(trained.checkpoint, sent, tmp_path)
    for word, (rows, answer), a, b in zip(WORDS, results, cli_original, cli_sent, strict=True):
        assert len(rows) == 3 and a["top"] and b["top"], word
        assert rows[0][0] == a["top"][0]["class"] == b["top"][0]["class"], (word, rows, a["top"])
        # The whole shown list is the CLI's, to the shown precision, and what the API answered.
        assert rows == [(t["class"], f"{100 * t['prob']:.1f}%") for t in b["top"]], word
        assert [t["class"] for t in answer["top"]] == [t["class"] for t in a["top"]], word
    check_no_other_host_and_no_errors(browser, server)


def check_examples(driver: Any, top1: str) -> None:
    wait_for(driver, "const b = document.getElementById('examples'); return b.dataset.class === arguments[0] "
             "&& b.querySelectorAll('svg').length === 3;", top1)
    info = driver.execute_script(
        "return [...document.querySelectorAll('#examples svg')].map(s => [s.querySelector('title').textContent,"
        " s.querySelectorAll('polyline').length]);")
    assert [t for t, _ in info] == [f"{top1} #{k}" for k in (1, 2, 3)]
    assert all(n >= 1 for _, n in info)
    assert driver.find_element("id", "examples-title").text == f"Real drawings of “{top1}”"


def check_no_other_host_and_no_errors(driver: Any, server: Server) -> None:
    # A fresh page load too, so the page's own files (html, css, js modules, icon) are in the log.
    open_page(driver, server)
    draw(driver, fit_to_canvas([[[0.0, 50.0, 100.0, 150.0, 200.0, 250.0], [0.0, 80.0, 0.0, 80.0, 0.0, 80.0],
                                 [0, 10, 20, 30, 40, 50]]]))
    urls = page_requests(driver)
    assert any(u.endswith("/static/js/main.js") for u in urls) and any(u.endswith("/api/predict") for u in urls)
    others = [u for u in urls if not (u.startswith(server.url + "/") or u.startswith("data:"))]
    assert others == []
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_undo_and_clear(browser: Any, server: Server, trained: Trained, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(browser, server)
    raw = first_raw(trained.shared, "cat")
    assert len(raw) >= 3
    draw(browser, fit_to_canvas(raw), "pen")
    before = browser.execute_script("return window.quickdraw.pad.version")
    browser.find_element("id", "undo").click()
    wait_settled(browser)
    after_undo = browser.execute_script("return window.quickdraw.last.drawing")
    assert len(after_undo) == len(raw) - 1 and browser.execute_script("return window.quickdraw.pad.version") > before
    undo_rows = shown(browser)
    # Ctrl+Z undoes too.
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    wait_settled(browser)
    after_key = browser.execute_script("return window.quickdraw.last.drawing")
    assert len(after_key) == len(raw) - 2
    cli = cli_predict(trained.checkpoint, [raw[:-1], after_undo, raw[:-2]], tmp_path)
    assert undo_rows[0][0] == cli[0]["top"][0]["class"] == cli[1]["top"][0]["class"]
    assert shown(browser)[0][0] == cli[2]["top"][0]["class"]

    browser.find_element("id", "clear").click()
    wait_settled(browser)
    state = browser.execute_script(
        "const c = document.getElementById('pad'); const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "return {strokes: window.quickdraw.pad.strokes.length, empty: window.quickdraw.pad.isEmpty(),"
        " guesses: document.querySelectorAll('#guesses li').length,"
        " state: document.getElementById('guesses').dataset.state,"
        " examples: document.querySelectorAll('#examples svg').length,"
        " inked: px.some(v => v !== 0), undo: document.getElementById('undo').disabled,"
        " clear: document.getElementById('clear').disabled};")
    assert state == {"strokes": 0, "empty": True, "guesses": 0, "state": "empty", "examples": 0, "inked": False,
                     "undo": True, "clear": True}
    # After a clear, a new drawing starts from nothing: its own time base and only its own strokes.
    draw(browser, fit_to_canvas(raw[:2]), "touch")
    again = browser.execute_script("return window.quickdraw.last.drawing")
    assert len(again) == 2 and again[0][2][0] == 0


def test_class_names_with_markup_are_shown_as_text(
        browser: Any, trained: Trained, tmp_path: Path) -> None:
    hostile = ['<img src=x onerror="window.pwned=1">', "<b>cat</b>", "&amp; tower", "fish\u202e & [red]chips[/]"]
    doc = torch.load(trained.checkpoint, weights_only=True)
    doc["classes"] = hostile
    ckpt = tmp_path / "hostile.pt"
    torch.save(doc, ckpt)
    server = start_server(ckpt, trained.cache_root, tmp_path / "serve.log", cache=None)
    try:
        open_page(browser, server)
        draw(browser, fit_to_canvas(first_raw(trained.shared, "cat")))
        names = [n for n, _ in shown(browser)]
        assert len(names) == 3 and set(names) <= set(hostile)
        assert browser.execute_script(
            "return window.pwned === undefined && document.querySelectorAll('#guesses img, #guesses b').length === 0")
    finally:
        stop_server(server)
