"""``quickdraw serve``'s API through Starlette's TestClient: it agrees with ``quickdraw predict`` (and with
``fetch --format raw --simplify`` then predict) on every shared drawing of the test checkpoint's classes, and it
holds its limits, refuses bad input with JSON errors, and reports its health."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import torch
from starlette.testclient import TestClient
from typer.testing import CliRunner

from quickdraw.cli.app import app as cli
from quickdraw.serve import Examples, Limits, Predictor, create_app
from quickdraw.serve import model as serve_model
from tests.serve.conftest import WORDS, Trained

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def predictor(trained: Trained) -> Predictor:
    return Predictor(trained.checkpoint)


@pytest.fixture(scope="module")
def client(trained: Trained, predictor: Predictor) -> TestClient:
    examples = Examples(trained.cache_name, root=trained.cache_root)
    # TestClient's Host is "testserver": named explicitly, as a deployment behind a name would.
    return TestClient(create_app(predictor, examples, allowed_hosts=["testserver"]))


def lines_of(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


def cli_predict(checkpoint: Path, lines: list[bytes], tmp: Path) -> list[dict[str, Any]]:
    src = tmp / "input.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    res = runner.invoke(cli, ["predict", "--checkpoint", str(checkpoint), str(src), "--top-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    return list(json.loads(res.stdout))


def api_predict(client: TestClient, drawing: Any) -> dict[str, Any]:
    r = client.post("/api/predict", json={"drawing": drawing, "top_k": 3})
    assert r.status_code == 200, r.text
    return dict(r.json())


def assert_same(api: dict[str, Any], cli_row: dict[str, Any], what: str) -> None:
    assert [t["class"] for t in api["top"]] == [t["class"] for t in cli_row["top"]], what
    assert [t["prob"] for t in api["top"]] == pytest.approx([t["prob"] for t in cli_row["top"]], abs=1e-5), what
    assert api["skipped"] == cli_row.get("skipped"), what


@pytest.mark.parametrize("kind", ["simplified", "raw"])
def test_every_shared_drawing_of_the_classes_agrees_with_quickdraw_predict(
        client: TestClient, trained: Trained, kind: str, tmp_path: Path) -> None:
    lines = [ln for w in WORDS for ln in lines_of(trained.shared / "full" / kind / f"{w}.ndjson")]
    assert len(lines) > 60
    rows = cli_predict(trained.checkpoint, lines, tmp_path)
    assert len(rows) == len(lines)
    classified = 0
    for line, row in zip(lines, rows, strict=True):
        rec = orjson.loads(line)
        got = api_predict(client, rec["drawing"])
        assert got["input"] == kind
        assert_same(got, row, f"{kind} {rec['word']} {rec['key_id']}")
        classified += bool(got["top"])
    assert classified > 0.9 * len(lines)  # the comparison is not only of skipped drawings


def test_raw_drawings_agree_with_fetch_raw_simplify_then_predict(
        client: TestClient, trained: Trained, tmp_path: Path) -> None:
    from quickdraw.pipeline.fetch import FetchOptions, fetch

    opts = FetchOptions(source=str(trained.shared / "full" / "raw"), format="raw", simplify=True)
    res = fetch(WORDS, tmp_path / "fetched", opts, concurrency=2)
    assert not res.failed
    simplified: dict[str, bytes] = {}
    for w in WORDS:
        for part in sorted((tmp_path / "fetched" / w).glob("part-*.parquet")):
            for row in pq.read_table(part).to_pylist():
                d, strokes, start = row["drawing"], [], 0
                for n in d["stroke_len"]:
                    strokes.append([d["x"][start : start + n], d["y"][start : start + n]])
                    start += n
                simplified[str(row["key_id"])] = orjson.dumps({"key_id": str(row["key_id"]), "drawing": strokes})
    raw = {str(orjson.loads(ln)["key_id"]): orjson.loads(ln)["drawing"]
           for w in WORDS for ln in lines_of(trained.shared / "full" / "raw" / f"{w}.ndjson")}
    keys = sorted(set(raw) & set(simplified))
    assert len(keys) > 60
    rows = cli_predict(trained.checkpoint, [simplified[k] for k in keys], tmp_path)
    for k, row in zip(keys, rows, strict=True):
        assert row["key_id"] == k
        assert_same(api_predict(client, raw[k]), row, k)


def test_health_names_the_model_limits_and_examples(client: TestClient, predictor: Predictor,
                                                   trained: Trained) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok"
    assert h["model"]["classes"] == WORDS and h["model"]["version"] == predictor.version
    assert h["limits"] == Limits().to_dict()
    assert h["examples"]["cache"] == trained.cache_name and h["examples"]["classes"] == len(WORDS)
    assert h["extensions"] == []
    # Every answer names the model it came from.
    answer = client.post("/api/predict", json={"drawing": [[[0, 50, 100, 150, 200, 255], [0, 60, 0, 60, 0, 60]]]})
    assert answer.json()["model"] == h["model"]
    timing = dict(part.strip().split(";dur=") for part in answer.headers["server-timing"].split(","))
    assert set(timing) == {"predict", "cpu"} and all(float(v) >= 0 for v in timing.values())


def test_model_version_is_a_hash_of_the_weights(trained: Trained, predictor: Predictor, tmp_path: Path) -> None:
    doc = torch.load(trained.checkpoint, weights_only=True)
    assert Predictor(trained.checkpoint).version == predictor.version
    key = sorted(doc["model_state"])[0]
    doc["model_state"][key] = doc["model_state"][key] + 1e-3
    other = tmp_path / "other.pt"
    torch.save(doc, other)
    assert Predictor(other).version != predictor.version


def test_short_drawing_is_skipped_not_guessed(client: TestClient) -> None:
    r = client.post("/api/predict", json={"drawing": [[[10, 20], [10, 20]]]})
    assert r.status_code == 200
    assert r.json()["top"] == [] and r.json()["skipped"].startswith("too_short")


def test_top_k(client: TestClient) -> None:
    d = [[[0, 50, 100, 150, 200, 255], [0, 60, 0, 60, 0, 60]]]
    top = client.post("/api/predict", json={"drawing": d, "top_k": 10}).json()["top"]
    assert len(top) == len(WORDS) and sum(t["prob"] for t in top) == pytest.approx(1, abs=1e-5)
    assert [t["prob"] for t in top] == sorted((t["prob"] for t in top), reverse=True)
    for bad in (0, -1, 51, 2.5, "3", True, None):
        r = client.post("/api/predict", json={"drawing": d, "top_k": bad})
        assert r.status_code == 422 and "top_k" in r.json()["error"], bad


# --------------------------------------------------------------------------------------------- limits


def test_body_over_the_limit_is_413_naming_it(client: TestClient) -> None:
    limit = Limits().max_body_bytes
    body = b'{"drawing": [[[' + b"1," * (limit // 2) + b"1], [1]]]}"
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["limit"] == "max_body_bytes" and r.json()["max"] == limit
    assert "max_body_bytes" in r.json()["error"]


def test_body_without_content_length_is_cut_off_while_reading(client: TestClient) -> None:
    limit = Limits().max_body_bytes

    def chunks() -> Any:  # a generator body goes out chunked, with no Content-Length to check up front
        for _ in range(64):
            yield b" " * (limit // 16)

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["limit"] == "max_body_bytes"


@pytest.mark.parametrize(("limit", "drawing"), [
    ("max_points", [[list(range(200)) * 30, list(range(200)) * 30]] * 2),  # 12,000 points
    ("max_strokes", [[[1, 2], [1, 2]]] * 501),
])
def test_points_and_strokes_over_the_limit_are_422_naming_it(client: TestClient, limit: str, drawing: Any) -> None:
    r = client.post("/api/predict", json={"drawing": drawing})
    assert r.status_code == 422, r.text
    doc = r.json()
    assert doc["limit"] == limit and doc["max"] == getattr(Limits(), limit) and limit in doc["error"]
    assert doc["value"] > doc["max"]


def test_limits_are_exact(trained: Trained) -> None:
    small = Limits(max_body_bytes=400, max_points=20, max_strokes=3)
    c = TestClient(create_app(Predictor(trained.checkpoint, small), allowed_hosts=["testserver"]))
    at = [[[0, 100, 200, 255, 30], [0, 100, 0, 100, 0]]] * 3 + [[[5] * 5, [5] * 5]]  # 4 strokes
    assert c.post("/api/predict", json={"drawing": at}).json()["limit"] == "max_strokes"
    ok = at[:3] + [[[5] * 5, [5] * 5]]
    ok = ok[:3]
    ok[2] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0] * 10]  # 5 + 5 + 10 = 20 points: at the limit
    assert c.post("/api/predict", json={"drawing": ok}).status_code == 200
    ok[2] = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0] * 11]  # 21
    assert c.post("/api/predict", json={"drawing": ok}).json()["limit"] == "max_points"
    body = json.dumps({"drawing": [[[1] * 20, [1] * 20]]}).encode()
    body = body + b" " * (400 - len(body))
    assert c.post("/api/predict", content=body, headers={"content-type": "application/json"}).status_code == 200
    r = c.post("/api/predict", content=body + b" ", headers={"content-type": "application/json"})
    assert r.status_code == 413


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"{not json", 400, "malformed JSON"),
    (b"", 400, "malformed JSON"),
    (b'{"drawing": [[[1e400, 2], [1, 2]]]}', 400, "non-finite number"),
    (b'{"drawing": ' + b"[" * 100 + b"]" * 100 + b"}", 400, "too deep"),
    (b'{"drawing": [[[1, 2], [1, 2]]]', 400, "malformed JSON"),
    (b'[1, 2, 3]', 422, "missing key"),
    (b'{"strokes": []}', 422, "missing key"),
    (b'{"drawing": "cat"}', 422, "wrong type"),
    (b'{"drawing": []}', 422, "empty drawing"),
    (b'{"drawing": [[[1, 2], [1]]]}', 422, "bad drawing"),
    (b'{"drawing": [[[1, "2"], [1, 2]]]}', 422, "wrong type"),
    (b'{"drawing": [[[-5, 2], [1, 2]]]}', 422, "coordinate out of range"),
    (b'{"drawing": [[[1.5, 2.25], [1, 2], [0, 10]], [[1], [2]]]}', 422, "bad raw drawing"),
    (b'{"drawing": [[[1.5, 2.25], [1, 2], [0.5, 10]]]}', 422, "bad raw drawing"),
    (b'{"drawing": [[[1e7, 2.25], [1, 2], [0, 10]]]}', 422, "bad raw drawing"),
])
def test_bad_json_and_bad_drawings_get_a_json_error(client: TestClient, body: bytes, status: int, reason: str) -> None:
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["reason"] == reason and reason in doc["error"]
    assert "Traceback" not in r.text


def test_content_type_method_host_and_unknown_paths(client: TestClient) -> None:
    d = {"drawing": [[[0, 255], [0, 255]]]}
    r = client.post("/api/predict", content=json.dumps(d), headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert client.post("/api/predict", json=d, headers={"content-type": "application/json; charset=utf-8"}).status_code == 200
    assert client.get("/api/predict").status_code == 405 and "error" in client.get("/api/predict").json()
    assert client.get("/api/nothing").status_code == 404 and "error" in client.get("/api/nothing").json()
    assert client.get("/static/../model.py").status_code == 404
    # A page on another site reaching this server through DNS rebinding sends its own name as Host.
    assert client.get("/api/health", headers={"host": "evil.example"}).status_code == 400
    local = TestClient(create_app(client.app.state.predictor), base_url="http://127.0.0.1:8000")
    assert local.get("/api/health").status_code == 200
    assert local.get("/api/health", headers={"host": "testserver"}).status_code == 400


# ------------------------------------------------------------------------------------- page, examples


def test_page_and_static_files_are_local_with_a_strict_csp(client: TestClient) -> None:
    from quickdraw.serve.app import STATIC

    r = client.get("/")
    assert r.status_code == 200 and "<canvas" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"index.html", "style.css", "main.js", "pad.js", "api.js", "live.js"}
    for p in files:
        rel = p.relative_to(STATIC).as_posix()
        got = client.get(f"/static/{rel}")
        assert got.status_code == 200 and got.content == p.read_bytes(), rel
        text = p.read_text()
        # No other host: the only absolute URL is the SVG namespace name (an identifier, never fetched).
        for token in ("http://", "https://", "//cdn", "@import"):
            assert token not in text.replace('"http://www.w3.org/2000/svg"', ""), (rel, token)
    assert "innerHTML" not in "".join(p.read_text() for p in files if p.suffix == ".js")


def test_examples_are_real_cached_drawings_of_the_class(client: TestClient, trained: Trained) -> None:
    from quickdraw.datasets import load
    from quickdraw.strokes import stroke3_to_strokes

    ds = load(trained.cache_name, split="train", root=trained.cache_root)
    for w in WORDS:
        r = client.get("/api/examples", params={"class": w, "n": 3})
        assert r.status_code == 200
        got = r.json()["drawings"]
        label = ds.classes.index(w)
        expected = [stroke3_to_strokes(ds[i][0]) for i in range(len(ds)) if ds.labels[i] == label][:3]
        assert got == expected and len(got) == 3
    assert client.get("/api/examples", params={"class": "dog"}).status_code == 404
    assert client.get("/api/examples", params={"class": "../../etc/passwd"}).status_code == 404
    for n in ("0", "9", "x", "-1"):
        r = client.get("/api/examples", params={"class": "cat", "n": n})
        assert r.status_code == 422 and r.json()["limit"] == "max_examples"


def test_no_cache_means_no_examples_but_a_working_api(trained: Trained, predictor: Predictor) -> None:
    c = TestClient(create_app(predictor, None, allowed_hosts=["testserver"]))
    assert c.get("/api/health").json()["examples"] is None
    assert c.get("/api/examples", params={"class": "cat"}).json()["drawings"] == []


# ----------------------------------------------------------------------------------- model, threads


def test_model_is_loaded_once(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = serve_model.load_checkpoint

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(serve_model, "load_checkpoint", counting)
    c = TestClient(create_app(Predictor(trained.checkpoint), allowed_hosts=["testserver"]))
    for _ in range(5):
        assert c.post("/api/predict", json={"drawing": [[[0, 100, 255], [0, 255, 0]]]}).status_code == 200
    assert len(calls) == 1


def test_inference_does_not_block_the_event_loop(trained: Trained) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Slow(Predictor):
        def predict_body(self, body: bytes) -> dict[str, Any]:
            entered.set()
            assert release.wait(20)
            return super().predict_body(body)

    c = TestClient(create_app(Slow(trained.checkpoint), allowed_hosts=["testserver"]))
    with c:
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(
            c.post("/api/predict", json={"drawing": [[[0, 100, 255], [0, 255, 0]]]}).status_code))
        t.start()
        assert entered.wait(20)
        t0 = time.monotonic()
        assert c.get("/api/health").status_code == 200  # answered while the prediction is still running
        assert time.monotonic() - t0 < 5 and t.is_alive()
        release.set()
        t.join(20)
    assert result == [200]


def test_the_readme_curl_example_works(client: TestClient) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `quickdraw serve`", 1)[1]
    body = re.search(r"-d '(\{.*?\})'", section)
    assert body, "README lost its curl example"
    r = client.post("/api/predict", content=body.group(1), headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()["top"]) == 3 and r.json()["skipped"] is None
