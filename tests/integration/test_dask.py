"""fetch and prepare on a real Dask cluster on loopback: `dask scheduler` plus two `dask worker` processes.

Every output is compared byte for byte with a local run of the same stage: on the shared sample data served
by the GCS emulator, on 60 synthetic classes, with one worker SIGKILLed mid-run, and with the workers writing
into the emulated bucket (gs:// through gcsfs).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from typer.testing import CliRunner  # noqa: E402

from quickdraw.cli.app import app  # noqa: E402
from quickdraw.parallel import SCHEDULER_ENV, cluster_executor  # noqa: E402
from quickdraw.pipeline.fetch import FetchOptions, fetch  # noqa: E402
from quickdraw.pipeline.prepare import prepare  # noqa: E402
from quickdraw.sources.synthetic import synthetic_records, to_ndjson  # noqa: E402
from tests.emulator import BUCKET, free_port  # noqa: E402

DASK = Path(sys.executable).with_name("dask")
SAMPLE = ["cat", "dog", "monkey", "apple", "bicycle", "The Eiffel Tower", "airplane", "zebra"]
SYNTH = sorted(__import__("quickdraw.classes", fromlist=["all_classes"]).all_classes())[:60]


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (relative path -> sha256), the writer-lock file aside."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".quickdraw.lock"}


def bucket_tree(prefix: str) -> dict[str, str]:
    from quickdraw.sources.remote import output_fs

    fs, root = output_fs(prefix)
    return {p[len(root) + 1:]: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in sorted(fs.find(root))
            if not p.endswith(".quickdraw.lock")}


class Cluster:
    """A scheduler and two single-threaded workers (no nanny: a SIGKILL really kills the worker)."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = env
        self.logs = tmp
        self.scheduler = self._start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--no-dashboard"], "scheduler")
        self.workers = [self.start_worker(i) for i in range(2)]
        self.wait_workers(2)

    def _start(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def start_worker(self, i: int) -> subprocess.Popen[bytes]:
        return self._start([str(DASK), "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                            "--host", "127.0.0.1", "--name", f"w{i}-{time.monotonic_ns()}"], f"worker{i}")

    def wait_workers(self, n: int) -> None:
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(self.address, timeout=5) as c:
                    c.wait_for_workers(n, timeout=max(1, deadline - time.time()))
                    return
            except (OSError, TimeoutError):
                if time.time() > deadline:
                    raise

    def stop(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    env.pop(SCHEDULER_ENV, None)
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    return env


@pytest.fixture(scope="module")
def cluster(gcs: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Started after the emulator, so the workers inherit QUICKDRAW_GCS_ENDPOINT."""
    c = Cluster(tmp_path_factory.mktemp("dask"), _env())
    yield c
    c.stop()


@pytest.fixture(scope="module")
def synth_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 synthetic classes of 60-200 drawings (a few duplicated key ids across classes, for prepare's dedup)."""
    src = tmp_path_factory.mktemp("synth") / "simplified"
    src.mkdir()
    for i, w in enumerate(SYNTH):
        recs = synthetic_records(60 + (i * 37) % 140, word=w, seed=i)
        if i % 7 == 3:
            recs += synthetic_records(5, word=w, seed=i - 1)  # drawings the previous class also has
        (src / f"{w}.ndjson").write_bytes(to_ndjson(recs))
    return src


def test_sample_data_on_cluster_is_byte_identical(cluster: Cluster, gcs_source: str, tmp_path: Path) -> None:
    opts = FetchOptions(source=gcs_source, part_rows=300)  # monkey (800 drawings) gets several parts
    fetch(SAMPLE, tmp_path / "raw-local", opts)
    with cluster_executor(cluster.address) as ex:
        res = fetch(SAMPLE, tmp_path / "raw-dask", opts, executor=ex)
        assert [c.status for c in res.classes] == ["fetched"] * len(SAMPLE)
        assert tree(tmp_path / "raw-dask") == tree(tmp_path / "raw-local")
        again = fetch(SAMPLE, tmp_path / "raw-dask", opts, executor=ex)
        assert {c.status for c in again.classes} == {"unchanged"}

        for kw in ({}, {"normalize": True, "on_long": "drop", "max_len": 60, "min_len": 8}):
            prepare(tmp_path / "raw-local", tmp_path / "st-local", overwrite=True, **kw)  # type: ignore[arg-type]
            got = prepare(tmp_path / "raw-local", tmp_path / "st-dask", executor=ex, overwrite=True, **kw)  # type: ignore[arg-type]
            assert tree(tmp_path / "st-dask") == tree(tmp_path / "st-local"), kw
            assert got.kept > 0 and sum(got.split_counts.values()) == got.kept


def test_sixty_synthetic_classes_through_the_cli(cluster: Cluster, synth_source: Path, tmp_path: Path) -> None:
    """The CLI (what dvc stages run) picks the cluster from QUICKDRAW_SCHEDULER; same bytes as without it."""
    runner = CliRunner()
    classes = ",".join(SYNTH)
    for env, tag in (({}, "local"), ({SCHEDULER_ENV: cluster.address}, "dask")):
        r = runner.invoke(app, ["fetch", "--classes", classes, "--source", str(synth_source), "--out",
                                str(tmp_path / f"raw-{tag}"), "--json"], env=env)
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["totals"]["failed"] == 0 and len(doc["classes"]) == 60
        r = runner.invoke(app, ["prepare", "--in", str(tmp_path / f"raw-{tag}"), "--out", str(tmp_path / f"st-{tag}"),
                                "--json"], env=env)
        assert r.exit_code == 0, r.output
    assert tree(tmp_path / "raw-dask") == tree(tmp_path / "raw-local")
    assert tree(tmp_path / "st-dask") == tree(tmp_path / "st-local")
    manifest = json.loads((tmp_path / "st-dask" / "_manifest.json").read_bytes())
    assert manifest["counts"]["duplicates"] > 0  # the dedup across classes was exercised


def test_relative_out_on_the_cluster_means_the_clients_folder(cluster: Cluster, synth_source: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """dvc stages pass relative paths (--out data/raw): workers, in their own working folders, must write into
    the client's folder, not create class folders under their cwd (found by review)."""
    runner = CliRunner()
    classes = ",".join(SYNTH[:6])
    monkeypatch.chdir(tmp_path)
    for env, tag in (({}, "local"), ({SCHEDULER_ENV: cluster.address}, "dask")):
        r = runner.invoke(app, ["fetch", "--classes", classes, "--source", str(synth_source), "--out", f"raw-{tag}"],
                          env=env)
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["prepare", "--in", f"raw-{tag}", "--out", f"st-{tag}"], env=env)
        assert r.exit_code == 0, r.output
    assert tree(tmp_path / "raw-dask") == tree(tmp_path / "raw-local")
    assert tree(tmp_path / "st-dask") == tree(tmp_path / "st-local")


def test_prepare_part_rollover_on_executor(synth_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards that roll over into several parts at class boundaries: the plan matches the streaming writer."""
    from concurrent.futures import ThreadPoolExecutor

    import quickdraw.pipeline.prepare as prep

    words = SYNTH[:12]
    fetch(words, tmp_path / "raw", FetchOptions(source=str(synth_source)))
    monkeypatch.setattr(prep, "PART_ROWS", 150)
    prepare(tmp_path / "raw", tmp_path / "a")
    with ThreadPoolExecutor(3) as ex:
        prepare(tmp_path / "raw", tmp_path / "b", executor=ex)
    a = tree(tmp_path / "a")
    assert len([k for k in a if k.startswith("stroke3/train/")]) >= 3
    assert tree(tmp_path / "b") == a


def test_worker_sigkilled_mid_run_still_identical(gcs: object, tmp_path: Path) -> None:
    """One of two workers is SIGKILLed while it fetches; Dask reruns its task on the other, which resumes
    from the class's last checkpoint: the output is complete and byte-identical."""
    src = tmp_path / "src"
    src.mkdir()
    words = SYNTH[:4]
    data = to_ndjson(synthetic_records(6_000, word="cat", seed=100))
    for w in words:  # one generated class under four names: generating drawings costs more than fetching them
        (src / f"{w}.ndjson").write_bytes(data.replace(b'"word":"cat"', json.dumps({"word": w})[1:-1].replace(": ", ":").encode()))
    opts = FetchOptions(source=str(src), part_rows=500, chunk_bytes=128 << 10)
    fetch(words, tmp_path / "local", opts)
    c = Cluster(tmp_path, _env())
    try:
        out = tmp_path / "dask"
        box: dict[str, object] = {}

        def run() -> None:
            try:
                with cluster_executor(c.address) as ex:
                    box["res"] = fetch(words, out, opts, executor=ex)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                box["err"] = exc

        t = threading.Thread(target=run)
        t.start()
        deadline = time.time() + 120
        # Kill once both running classes have a checkpoint (each worker is mid-class), so the retried task
        # resumes from one rather than starting over.
        while time.time() < deadline and sum((out / w / ".fetch-state.json").exists() for w in words) < 2:
            time.sleep(0.01)
        assert not any((out / w / "_manifest.json").exists() for w in words[:2]), "too late to kill mid-class"
        victim = c.workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        t.join(300)
        assert "err" not in box, box.get("err")
        res = box["res"]
        statuses = [x.status for x in res.classes]  # type: ignore[attr-defined]
        assert set(statuses) <= {"fetched", "resumed"} and "resumed" in statuses, statuses
        assert tree(out) == tree(tmp_path / "local")
    finally:
        c.stop()


def test_workers_write_into_the_bucket(cluster: Cluster, gcs_source: str, tmp_path: Path) -> None:
    """fetch and prepare with gs:// outputs written by the workers, then `cache build --in gs://`."""
    from quickdraw.cache import build_cache
    from quickdraw.pipeline.cache import run as cache_run
    from quickdraw.sources.remote import output_fs

    fs, _ = output_fs(f"gs://{BUCKET}-out/x")
    if not fs.exists(f"{BUCKET}-out"):
        fs.mkdir(f"{BUCKET}-out")
    words = SAMPLE[:5]
    opts = FetchOptions(source=gcs_source, part_rows=300, countries=("US", "GB", "DE", "BR", "CA", "FR", "AU"))
    fetch(words, tmp_path / "raw", opts)
    prepare(tmp_path / "raw", tmp_path / "st")
    raw_url, st_url = f"gs://{BUCKET}-out/run/raw", f"gs://{BUCKET}-out/run/strokes"
    with cluster_executor(cluster.address) as ex:
        res = fetch(words, raw_url, opts, executor=ex)
        assert {c.status for c in res.classes} == {"fetched"}
        prepare(raw_url, st_url, executor=ex)
    assert bucket_tree(raw_url) == tree(tmp_path / "raw")
    assert bucket_tree(st_url) == tree(tmp_path / "st")

    local = build_cache(tmp_path / "st", tmp_path / "cache-a", "sample")
    remote_summary = cache_run(st_url, "sample", root=tmp_path / "cache-b")
    assert remote_summary["version"] == local.version
    assert tree(tmp_path / "cache-b" / "sample" / local.version) == tree(local.path)

    # A re-run finds every class complete in the bucket and downloads no part.
    with cluster_executor(cluster.address) as ex:
        again = fetch(words, raw_url, opts, executor=ex)
    assert {c.status for c in again.classes} == {"unchanged"} and sum(c.bytes_read for c in again.classes) == 0


def test_bucket_prefix_ownership(gcs: object, gcs_source: str, tmp_path: Path) -> None:
    """A prefix with objects quickdraw did not write is refused; objects it did not write are never deleted."""
    from quickdraw.errors import OwnershipError
    from quickdraw.sources.remote import output_fs

    fs, _ = output_fs(f"gs://{BUCKET}-own/x")
    if not fs.exists(f"{BUCKET}-own"):
        fs.mkdir(f"{BUCKET}-own")
    fs.pipe_file(f"{BUCKET}-own/users/notes.txt", b"mine")
    with pytest.raises(OwnershipError, match="not created by quickdraw"):
        fetch(["cat"], f"gs://{BUCKET}-own/users", FetchOptions(source=gcs_source))
    fetch(["cat"], f"gs://{BUCKET}-own/users", FetchOptions(source=gcs_source), overwrite=True)
    fs.pipe_file(f"{BUCKET}-own/users/cat/keep-me.txt", b"mine too")
    # A changed identity refetches the class: its old parts go, the user's objects stay.
    fetch(["cat"], f"gs://{BUCKET}-own/users", FetchOptions(source=gcs_source, max_per_class=5))
    assert fs.cat_file(f"{BUCKET}-own/users/notes.txt") == b"mine"
    assert fs.cat_file(f"{BUCKET}-own/users/cat/keep-me.txt") == b"mine too"
    m = json.loads(fs.cat_file(f"{BUCKET}-own/users/cat/_manifest.json"))
    assert m["counts"]["accepted"] == 5


def test_a_class_folder_named_dotdot_in_a_bucket_is_refused(gcs: object, gcs_source: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing is data: an object under `trav/../` listed a class `..`, and prepare staged its manifest and
    parts into the folder above its scratch folder (found by the adversarial review)."""
    from quickdraw.sources.remote import output_fs

    fs, _ = output_fs(f"gs://{BUCKET}-trav/f1")
    if not fs.exists(f"{BUCKET}-trav"):
        fs.mkdir(f"{BUCKET}-trav")
    fetch(["cat"], f"gs://{BUCKET}-trav/f1", FetchOptions(source=gcs_source, max_per_class=5))
    for name in ("_manifest.json", "part-00000.parquet"):
        fs.pipe_file(f"{BUCKET}-trav/trav/../{name}", fs.cat_file(f"{BUCKET}-trav/f1/cat/{name}"))
    fs.pipe_file(f"{BUCKET}-trav/trav/.quickdraw-output.json", fs.cat_file(f"{BUCKET}-trav/f1/.quickdraw-output.json"))
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    r = CliRunner().invoke(app, ["prepare", "--in", f"gs://{BUCKET}-trav/trav", "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "class folder name" in r.output and "'..'" in r.output, r.output
    assert sorted(p.name for p in scratch.iterdir() if not p.is_dir()) == []  # nothing written above the scratch


def test_bad_scheduler_fails_fast_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = runner.invoke(app, ["fetch", "--classes", "cat", "--source", str(tmp_path), "--out", str(tmp_path / "o")],
                      env={SCHEDULER_ENV: f"tcp://127.0.0.1:{port}"})
    assert r.exit_code == 2
    assert time.monotonic() - t0 < 10
    err = r.output.strip()
    assert "\n" not in err.replace("\n ", " ").strip() or err.count("error:") == 1
    assert f"tcp://127.0.0.1:{port}" in err and SCHEDULER_ENV in err and "Traceback" not in err
    r = runner.invoke(app, ["prepare", "--in", str(tmp_path), "--out", str(tmp_path / "p"), "--scheduler", "not an address"])
    assert r.exit_code == 2 and "--scheduler" in r.output and "tcp://HOST:PORT" in r.output


@pytest.mark.parametrize("lock", [b'{"host": "HOST", "pid": 100000000000000000000, "since": 1}',
                                  b'{"host": "vm", "pid": 1, "since": 100000000000000000000}'])
def test_a_hand_edited_lock_object_is_a_refusal_not_a_traceback(gcs: object, gcs_source: str, lock: bytes) -> None:
    """A pid or a time beyond any C long in a lock object raised OverflowError (found by review)."""
    import socket as socket_mod

    from quickdraw.errors import OwnershipError
    from quickdraw.sources.remote import output_fs

    fs, _ = output_fs(f"gs://{BUCKET}-lk/x")
    if not fs.exists(f"{BUCKET}-lk"):
        fs.mkdir(f"{BUCKET}-lk")
    fs.pipe_file(f"{BUCKET}-lk/x/.quickdraw.lock", lock.replace(b"HOST", socket_mod.gethostname().encode()))
    with pytest.raises(OwnershipError, match="another quickdraw fetch is writing into"):
        fetch(["cat"], f"gs://{BUCKET}-lk/x", FetchOptions(source=gcs_source, max_per_class=3))
    fs.rm_file(f"{BUCKET}-lk/x/.quickdraw.lock")


def test_a_port_that_is_not_a_scheduler_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that accepts and never speaks Dask (the dashboard's 8787, any server) hung fetch for good."""
    import socket as socket_mod
    import threading

    from quickdraw import parallel

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 2.0)
    srv = socket_mod.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket_mod.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accepted, never answered
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        r = CliRunner().invoke(app, ["fetch", "--classes", "cat", "--source", str(tmp_path), "--out",
                                     str(tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{port}"])
        assert r.exit_code == 2, r.output
        assert time.monotonic() - t0 < 30
        assert "did not answer as a Dask scheduler" in r.output and "Traceback" not in r.output, r.output
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        srv.close()


def test_bucket_output_resumes_after_sigkill(gcs: object, tmp_path: Path) -> None:
    """A fetch into gs:// killed mid-class leaves a resume state object and no manifest (nothing looks
    complete); the next run resumes from it (uploading only new parts, never the mirrored ones) and the
    bucket ends byte-identical to a local run."""
    from quickdraw.sources.remote import output_fs

    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.ndjson").write_bytes(to_ndjson(synthetic_records(8_000, word="cat", seed=7)))
    opts = FetchOptions(source=str(src), part_rows=400, chunk_bytes=64 << 10)
    fetch(["cat"], tmp_path / "local", opts)
    fs, _ = output_fs(f"gs://{BUCKET}-resume/x")
    if not fs.exists(f"{BUCKET}-resume"):
        fs.mkdir(f"{BUCKET}-resume")
    url = f"gs://{BUCKET}-resume/raw"
    code = ("import sys; from quickdraw.pipeline.fetch import fetch, FetchOptions; "
            f"fetch(['cat'], {url!r}, FetchOptions(source={str(src)!r}, part_rows=400, chunk_bytes=64 << 10))")
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env())
    state = f"{BUCKET}-resume/raw/cat/.fetch-state.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if fs.exists(state) and len(json.loads(fs.cat_file(state))["parts"]) >= 3:
            break
        fs.invalidate_cache()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}-resume/raw/cat/_manifest.json"), "the run finished before it was killed"
    res = fetch(["cat"], url, opts)
    assert res.classes[0].status == "resumed"
    assert bucket_tree(url) == tree(tmp_path / "local")


def test_raw_variant_prepare_on_executor(shared_data: Path, tmp_path: Path) -> None:
    """A raw-variant fetch (prepare simplifies it, and writes stroke3t): the executor path plans its lengths
    from the same conversion, so its files equal the local prepare's."""
    from concurrent.futures import ProcessPoolExecutor

    from quickdraw.pipeline.prepare import FORMATS

    raw = shared_data / "full" / "raw"
    words = sorted(p.stem for p in raw.glob("*.ndjson"))[:6]
    fetch(words, tmp_path / "raw", FetchOptions(source=str(raw), format="raw"))
    prepare(tmp_path / "raw", tmp_path / "a", formats=tuple(FORMATS))
    with ProcessPoolExecutor(2) as ex:
        prepare(tmp_path / "raw", tmp_path / "b", formats=tuple(FORMATS), executor=ex)
    assert tree(tmp_path / "b") == tree(tmp_path / "a")


def test_no_credentials_for_a_bucket_output_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker without credentials for a gs:// output printed google.auth's 60-line traceback (review)."""
    from quickdraw.errors import QuickDrawError
    from quickdraw.sources.defaults import ENDPOINT_ENV, TOKEN_ENV
    from quickdraw.sources.remote import output_fs

    for var in (ENDPOINT_ENV, TOKEN_ENV, "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server: fail at once, not after a timeout
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    try:
        output_fs("gs://someone-elses-bucket/out")
    except QuickDrawError as exc:
        assert "no credentials to write to this bucket" in str(exc) and TOKEN_ENV in str(exc)
    else:
        pytest.skip("this machine has Google credentials")
