""""Finish my drawing": ``POST /api/complete`` through Starlette's TestClient (it agrees with
``quickdraw.models.sketch.complete`` on the same prefix and seed, maps its answer back into the page's frame, holds
its limits) and, in headless Chromium, the page's *Finish it* button animating a continuation onto the pad."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from quickdraw.datasets.render import strokes_from_sequence
from quickdraw.models.sketch import complete, load_sketch
from quickdraw.pipeline.predict import simplify_raw_drawing
from quickdraw.pipeline.sketch import SketchParams, train
from quickdraw.serve import Predictor, create_app
from quickdraw.serve.sketch import Completer, sketch_extension
from quickdraw.strokes import drawing_to_stroke3
from tests.serve import test_browser as tb
from tests.serve.conftest import CACHE_NAME, Server, Trained, start_server, stop_server, trained  # noqa: F401
from tests.serve.test_browser import browser  # noqa: F401  (the serve tests' headless Chromium fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sketch_ckpt(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("sketch-serve") / "sketch"
    p = SketchParams(hidden=24, num_mixture=4, steps=40, eval_every=20, batch_size=8, lr=5e-3)
    return train(CACHE_NAME, out, params=p, classes="cat", root=trained.cache_root).checkpoint


@pytest.fixture(scope="module")
def client(trained: Trained, sketch_ckpt: Path) -> TestClient:  # noqa: F811
    app = create_app(Predictor(trained.checkpoint), extensions=[sketch_extension(Completer(sketch_ckpt))],
                     allowed_hosts=["testserver"])
    return TestClient(app)


def raw_cat(trained: Trained) -> list[Any]:  # noqa: F811
    line = (trained.shared / "full" / "raw" / "cat.ndjson").read_bytes().splitlines()[0]
    return list(orjson.loads(line)["drawing"])


def test_health_lists_the_extension_and_the_page_module_is_served(client: TestClient) -> None:
    health = client.get("/api/health").json()
    (ext,) = health["extensions"]
    assert ext["name"] == "sketch" and ext["module"] == "/ext/sketch/complete.js" and ext["classes"] == ["cat"]
    js = client.get(ext["module"])
    assert js.status_code == 200 and "export function setup" in js.text
    assert "javascript" in js.headers["content-type"]


def test_complete_agrees_with_the_python_api_and_maps_back_to_the_page_frame(
        client: TestClient, trained: Trained, sketch_ckpt: Path) -> None:  # noqa: F811
    drawing = raw_cat(trained)
    r = client.post("/api/complete", json={"drawing": drawing, "n": 3, "temperature": 0.5, "seed": 11, "max_len": 60})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["input"] == "raw" and len(doc["sketches"]) == 3 and doc["seed"] == 11
    # The same prefix (the drawing simplified as fetch --simplify does) and seed, straight through Python.
    prefix = drawing_to_stroke3(simplify_raw_drawing(drawing))
    assert doc["prefix_steps"] == len(prefix)
    model, _ = load_sketch(sketch_ckpt)
    grid = complete(model, prefix, 3, 0.5, max_len=60, seed=11)
    n_prefix = len(strokes_from_sequence(prefix.astype(np.float64), "stroke3"))
    xs = np.array([v for s in drawing for v in s[0]], np.float64)
    ys = np.array([v for s in drawing for v in s[1]], np.float64)
    k = 255.0 / max(np.ptp(xs), np.ptp(ys))
    t_last = max(max(s[2]) for s in drawing)
    for sk, seq in zip(doc["sketches"], grid.sketches):
        expect = strokes_from_sequence(seq, "stroke5")[n_prefix:]
        assert len(sk["strokes_simplified"]) == len(expect)
        for got, want in zip(sk["strokes_simplified"], expect):
            np.testing.assert_allclose(np.array(got).T, want, atol=0.006)
        # strokes: the same points in the request's frame (the inverse of the simplification's scaling) ...
        for raw_s, simp in zip(sk["strokes"], sk["strokes_simplified"]):
            np.testing.assert_allclose((np.array(raw_s[0]) - xs.min()) * k, simp[0], atol=0.02)
            np.testing.assert_allclose((np.array(raw_s[1]) - ys.min()) * k, simp[1], atol=0.02)
        # ... with times that carry on after the drawing's, so the pad's drawing stays a valid raw drawing.
        ts = [t for s in sk["strokes"] for t in s[2]]
        assert ts == sorted(ts) and (not ts or ts[0] > t_last)
    continued = drawing + doc["sketches"][0]["strokes"]
    assert client.post("/api/predict", json={"drawing": continued}).status_code == 200


def test_simplified_and_empty_drawings(client: TestClient) -> None:
    simple = [[[10, 60, 60], [10, 10, 60]]]
    doc = client.post("/api/complete", json={"drawing": simple, "seed": 1}).json()
    assert doc["input"] == "simplified" and doc["sketches"][0]["strokes"] == doc["sketches"][0]["strokes_simplified"]
    scratch = client.post("/api/complete", json={"drawing": [], "seed": 2, "max_len": 40})
    assert scratch.status_code == 200 and scratch.json()["prefix_steps"] == 0
    a = client.post("/api/complete", json={"drawing": simple, "seed": 5}).json()
    b = client.post("/api/complete", json={"drawing": simple, "seed": 5}).json()
    assert a["sketches"] == b["sketches"]  # seeded: reproducible


@pytest.mark.parametrize("body, status, needle", [
    ({"drawing": [], "n": 0}, 422, "n must be a whole number in 1..8"),
    ({"drawing": [], "n": 99}, 422, "n must be"),
    ({"drawing": [], "n": True}, 422, "n must be"),
    ({"drawing": [], "temperature": 0}, 422, "0 < temperature <= 2"),
    ({"drawing": [], "max_len": 100000}, 422, "max_len must be"),
    ({"drawing": [], "seed": -1}, 422, "seed must be"),
    ({"drawing": "cat"}, 422, "drawing is a str"),
    ({"nodrawing": 1}, 422, "drawing"),
    ({"drawing": [[[0] * 6000, [0] * 6000]] * 2}, 422, "max_points"),
])
def test_bad_requests_are_json_errors(client: TestClient, body: dict[str, Any], status: int, needle: str) -> None:
    r = client.post("/api/complete", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"] or needle == r.json().get("limit")


def test_transport_errors(client: TestClient) -> None:
    assert client.post("/api/complete", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/api/complete", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    big = b"[" + b"0," * (1 << 20) + b"0]"
    assert client.post("/api/complete", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert client.get("/api/complete").status_code == 405


def test_without_the_option_there_is_no_route(trained: Trained) -> None:  # noqa: F811
    plain = TestClient(create_app(Predictor(trained.checkpoint), allowed_hosts=["testserver"]))
    assert plain.get("/api/health").json()["extensions"] == []
    assert plain.post("/api/complete", json={"drawing": []}).status_code == 404


# ------------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def sketch_server(trained: Trained, sketch_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: F811
    s = start_server(trained.checkpoint, trained.cache_root, tmp_path_factory.mktemp("sk-log") / "serve.log",
                     "--sketch-checkpoint", str(sketch_ckpt))
    yield s
    stop_server(s)


def test_finish_it_button_animates_and_appends_the_continuation(
        browser: Any, sketch_server: Server, trained: Trained, tmp_path: Path) -> None:  # noqa: F811
    driver = browser
    tb.open_page(driver, sketch_server)
    tb.wait_for(driver, "return !!document.getElementById('finish')")
    before = tb.fit_to_canvas(raw_cat(trained))
    tb.draw(driver, before)
    n_before = driver.execute_script("return window.quickdraw.pad.strokes.length")
    assert n_before == len(before)
    driver.execute_script("document.getElementById('finish-temperature').value = '0.4';"
                          "document.getElementById('finish').click();")
    tb.wait_for(driver, "const b = document.getElementById('finish');"
                        "return ['done', 'error'].includes(b.dataset.state) && !window.quickdraw.sketch.animating",
                timeout=60)
    state = driver.execute_script(
        "const q = window.quickdraw; return {state: document.getElementById('finish').dataset.state,"
        "note: document.getElementById('finish-status').textContent, strokes: q.pad.strokes.length,"
        "answer: q.sketch.last};")
    assert state["state"] == "done", state["note"]
    added = len(state["answer"]["sketches"][0]["strokes"])
    assert state["strokes"] == n_before + added
    tb.wait_settled(driver)  # the live guesser judged the finished drawing
    if added:
        assert driver.execute_script("return window.quickdraw.pad.undo()") is True
        assert driver.execute_script("return window.quickdraw.pad.strokes.length") == n_before + added - 1
    driver.save_screenshot(str(tmp_path / "finish.png"))
    tb.check_no_other_host_and_no_errors(driver, sketch_server)
