"""`python -m expo.data fetch` / `verify` against a local HTTP server (no internet needed).

The server serves bytes from memory, records every request's Range header, can be told to cut a
response after k bytes (an interrupted download), to ignore Range (answer 200), or to answer HTML.
"""
import dataclasses
import hashlib
import http.server
import io
import re
import tarfile
import threading
import urllib.parse
import zipfile

import numpy as np
import pytest

from expo.data import __main__ as cli
from expo.data import fetch, registry, verify
from expo.data.fetch import FetchError, download, drive_confirm_url, fetch_file
from expo.data.registry import ExternalDataset, RemoteFile
from expo.data.robomimic_hdf5 import write_robomimic_hdf5
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS
from expo.protocol import TASKS, get_task, paper_dataset

SOURCE = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        parts = urllib.parse.urlsplit(self.path)
        rng = self.headers.get("Range")
        srv.requests.append((parts.path, rng))
        if parts.path == "/download" and "confirm=t" not in parts.query:
            return self._send(200, b"<html>confirm first</html>", "text/html")
        if parts.path not in srv.files:
            return self._send(404, b"not found", "text/plain")
        body, ctype = srv.files[parts.path]
        start, status, headers = 0, 200, {}
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
            status, headers = 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
        cut = srv.cut_after.pop(parts.path, None)
        self._send(status, body[start:], ctype, headers, limit=None if cut is None else cut - start)

    def _send(self, status, payload, ctype, headers=None, limit=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload if limit is None else payload[:limit])  # HTTP/1.0: the connection closes


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.cut_after, srv.ignore_range = {}, [], {}, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path / "data"


def quiet(*_):
    pass


def test_full_download(server, tmp_path):
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    dest = tmp_path / "sub" / "f.bin"
    download(f"{server.url}/f.bin", dest, size=len(SOURCE), sha256=hashlib.sha256(SOURCE).hexdigest(),
             progress=False, log=quiet)
    assert dest.read_bytes() == SOURCE
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert server.requests == [("/f.bin", None)]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    server.cut_after["/f.bin"] = k = 123_457
    dest = tmp_path / "f.bin"
    with pytest.raises(FetchError, match=r"kept in .*f\.bin\.part.*resume") as err:
        download(f"{server.url}/f.bin", dest, progress=False, retries=0, log=quiet)
    assert "\n" not in str(err.value)
    part = tmp_path / "f.bin.part"
    assert not dest.exists() and part.read_bytes() == SOURCE[:k]

    download(f"{server.url}/f.bin", dest, progress=False, retries=0, log=quiet)
    assert server.requests[-1] == ("/f.bin", f"bytes={k}-")
    assert dest.read_bytes() == SOURCE and not part.exists()


def test_retries_resume_within_one_call(server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_DELAY", 0.0)
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    server.cut_after["/f.bin"] = 1000
    dest = tmp_path / "f.bin"
    download(f"{server.url}/f.bin", dest, progress=False, retries=1, log=quiet)
    assert [r for _, r in server.requests] == [None, "bytes=1000-"]
    assert dest.read_bytes() == SOURCE


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    server.ignore_range = True
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 5000)  # stale bytes that must not survive
    lines = []
    download(f"{server.url}/f.bin", dest, progress=False, retries=0, log=lines.append)
    assert server.requests == [("/f.bin", "bytes=5000-")]
    assert dest.read_bytes() == SOURCE
    assert any("ignored the Range" in line for line in lines)


def test_complete_part_is_finished_after_416(server, tmp_path):
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    (tmp_path / "f.bin.part").write_bytes(SOURCE)  # every byte arrived, the rename did not happen
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False, retries=0, log=quiet)
    assert (tmp_path / "f.bin").read_bytes() == SOURCE


def test_size_and_sha256_mismatch_are_errors(server, tmp_path):
    server.files["/f.bin"] = (SOURCE, "application/octet-stream")
    dest = tmp_path / "f.bin"
    with pytest.raises(FetchError, match=f"serves {len(SOURCE)} bytes but the registry expects {len(SOURCE) + 1}"):
        download(f"{server.url}/f.bin", dest, size=len(SOURCE) + 1, progress=False, log=quiet)
    assert not dest.exists()
    with pytest.raises(FetchError, match="sha256 .* differs"):
        download(f"{server.url}/f.bin", dest, sha256="0" * 64, progress=False, log=quiet)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_html_answer_is_a_one_line_error(server, tmp_path):
    server.files["/page"] = (b"<html><body>Sign in</body></html>", "text/html; charset=utf-8")
    dest = tmp_path / "f.bin"
    with pytest.raises(FetchError) as err:
        download(f"{server.url}/page", dest, progress=False, retries=0, log=quiet)
    msg = str(err.value)
    assert "HTML page" in msg and "by hand" in msg and str(dest) in msg and "\n" not in msg
    assert not dest.exists()


def test_http_error_names_the_registry(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404.*registry"):
        download(f"{server.url}/nope", tmp_path / "f.bin", progress=False, retries=0, log=quiet)


def test_google_drive_confirm_form(server, tmp_path, monkeypatch):
    """Drive's large-file warning page: its download form leads to the file (followed with Range)."""
    form = ('<html><form id="download-form" action="/download" method="get">'
            '<input type="submit" value="Download anyway"/><input type="hidden" name="id" value="ABC">'
            '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
            '</form></html>')
    server.files["/uc"] = (form.encode(), "text/html; charset=utf-8")
    server.files["/download"] = (SOURCE, "application/octet-stream")
    monkeypatch.setattr(fetch, "is_google_drive", lambda url: True)
    dest = tmp_path / "f.bin"
    download(f"{server.url}/uc?export=download&id=ABC", dest, progress=False, retries=0, log=quiet)
    assert dest.read_bytes() == SOURCE
    assert [p for p, _ in server.requests] == ["/uc", "/download"]


def test_drive_confirm_url_variants():
    url = "https://drive.google.com/uc?export=download&id=XYZ"
    old = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC1&amp;id=XYZ">Download anyway</a>'
    assert drive_confirm_url(old, url) == "https://drive.google.com/uc?export=download&confirm=AbC1&id=XYZ"
    form = ('<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            '<input type="hidden" name="id" value="XYZ"><input type="hidden" name="confirm" value="t"></form>')
    assert drive_confirm_url(form, url) == "https://drive.usercontent.google.com/download?id=XYZ&confirm=t"
    assert drive_confirm_url("<html>quota exceeded</html>", url) is None


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _targz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_members_are_extracted_from_one_download(server, root, kind):
    members = {"release/pen2_sparse.npy": SOURCE[:1000], "release/door2_sparse.npy": SOURCE[1000:3000]}
    server.files[f"/rel.{kind}"] = ((_zip if kind == "zip" else _targz)(members), "application/octet-stream")
    url = f"{server.url}/rel.{kind}"
    a = RemoteFile("awac/pen2_sparse.npy", url, member="release/pen2_sparse.npy", size=1000)
    b = RemoteFile("awac/door2_sparse.npy", url, member="./release/door2_sparse.npy")
    assert fetch_file(a, progress=False, log=quiet).read_bytes() == SOURCE[:1000]
    assert fetch_file(b, progress=False, log=quiet).read_bytes() == SOURCE[1000:3000]
    assert (root / "downloads" / f"rel.{kind}").is_file()
    assert len(server.requests) == 1  # the archive is downloaded once
    lines = []
    fetch_file(a, progress=False, log=lines.append)
    assert lines == [f"{a.path()}: already present, skipped"] and len(server.requests) == 1
    fresh = set()  # --force: one new download of the archive serves both members
    fetch_file(a, force=True, progress=False, log=quiet, fresh_archives=fresh)
    fetch_file(b, force=True, progress=False, log=quiet, fresh_archives=fresh)
    assert len(server.requests) == 2 and b.path().read_bytes() == SOURCE[1000:3000]

    missing = RemoteFile("awac/x.npy", url, member="release/relocate2_sparse.npy")
    with pytest.raises(FetchError, match="no member 'release/relocate2_sparse.npy'"):
        fetch_file(missing, progress=False, log=quiet)
    wrong_size = RemoteFile("awac/y.npy", url, member="release/pen2_sparse.npy", size=999)
    with pytest.raises(FetchError, match="got 1000 bytes, the registry expects 999"):
        fetch_file(wrong_size, progress=False, log=quiet)
    assert not wrong_size.path().exists()


# ------------------------------------------------------------------------------------------ verify

WIDTHS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def write_tiny(path, lengths=(5, 3, 4), act_dim=7):
    demos = []
    for k, n in enumerate(lengths):
        obs = {key: np.full((n, w), k, dtype=np.float64) for key, w in WIDTHS.items()}
        demos.append({"obs": obs, "next_obs": obs, "actions": np.zeros((n, act_dim)),
                      "rewards": np.eye(n)[-1], "dones": np.eye(n)[-1], "states": np.zeros((n, 3))})
    write_robomimic_hdf5(path, demos, env_args={"env_name": "Lift", "type": 1, "env_kwargs": {}})


@pytest.fixture
def tiny(root, monkeypatch, server):
    """A registered robomimic-format dataset used by a temporary task with Lift's protocol (19 / 7)."""
    def register(**expected):
        entry = ExternalDataset(
            key="tiny_robomimic", format="robomimic_hdf5",
            files=(RemoteFile("tiny/low_dim.hdf5", f"{server.url}/low_dim.hdf5"),),
            description="test data", expected=expected or {"transitions": 12, "demos": 3, "obs_dim": 19, "act_dim": 7},
            obs_keys=ROBOMIMIC_OBS_KEYS,
        )
        monkeypatch.setitem(registry.DATASETS, entry.key, entry)
        return entry

    monkeypatch.setitem(TASKS, "tiny-task", dataclasses.replace(
        get_task("lift"), name="tiny-task", dataset="tiny_robomimic", paper_task=False, paper_dataset=""))
    return register


def test_verify_ok_row(tiny):
    entry = tiny()
    write_tiny(entry.path())
    (row,) = verify.verify("tiny-task")
    assert (row.tasks, row.dataset, row.status) == (("tiny-task",), "tiny_robomimic", "ok")
    assert (row.transitions, row.episodes, row.obs_dim, row.act_dim) == (12, 3, 19, 7)
    table = verify.format_table([row])
    assert "tiny-task" in table and "1/1 datasets ok" in table


def test_verify_missing_row_names_the_fetch_command(tiny):
    entry = tiny()
    entry.path().parent.mkdir(parents=True)
    (entry.path().parent / "low_dim.hdf5.part").write_bytes(b"x" * 10)
    (row,) = verify.verify("tiny_robomimic")
    assert row.status == "missing" and row.transitions is None
    (problem,) = row.problems
    assert "is missing" in problem and "10 bytes of an interrupted download" in problem
    assert "`python -m expo.data fetch tiny_robomimic`" in problem
    assert "tiny_robomimic (missing):" in verify.format_table([row])


def test_verify_malformed_row(tiny):
    entry = tiny()
    entry.path().parent.mkdir(parents=True)
    entry.path().write_bytes(b"<html>not hdf5</html>")
    (row,) = verify.verify("tiny_robomimic")
    assert row.status == "malformed"
    assert "not a readable HDF5 file" in row.problems[0] and "fetch tiny_robomimic --force" in row.problems[0]


def test_verify_wrong_width_for_the_task_is_caught(tiny):
    entry = tiny()
    write_tiny(entry.path(), act_dim=6)
    (row,) = verify.verify("tiny-task")
    assert row.status == "malformed" and "expects 19 and 7" in row.problems[0]


def test_verify_count_and_size_mismatch_rows(tiny):
    entry = tiny(demos=4, transitions=12)
    write_tiny(entry.path())
    (row,) = verify.verify("tiny_robomimic")
    assert row.status == "mismatch" and row.episodes == 3 and row.transitions == 12
    (problem,) = row.problems
    assert "demos is 3, the registry expects 4" in problem and "fetch tiny_robomimic --force" in problem

    sized = ExternalDataset(key="tiny_robomimic", format="robomimic_hdf5", description="test data",
                            files=(RemoteFile("tiny/low_dim.hdf5", "http://x/y", size=1),), obs_keys=ROBOMIMIC_OBS_KEYS)
    registry.DATASETS["tiny_robomimic"] = sized  # restored by monkeypatch.setitem in the fixture
    (row,) = verify.verify("tiny_robomimic")
    assert row.status == "mismatch" and "the registry expects 1" in row.problems[0]


def test_verify_default_covers_every_task_without_generating(root):
    rows = verify.verify()
    assert {t for r in rows for t in r.tasks} == set(TASKS)
    by_key = {r.dataset: r for r in rows}
    lift = by_key[get_task("lift").dataset]
    assert lift.status == "missing" and "python -m expo.data generate lift" in lift.problems[0]
    assert not list(root.rglob("*.hdf5"))  # verify never generates or downloads
    assert all(r.status in ("missing", "unavailable") and r.problems for r in rows)


def test_cli_fetch_then_verify(tiny, server, capsys):
    entry = tiny()
    write_tiny(entry.path())
    data = entry.path().read_bytes()
    entry.path().unlink()
    server.files["/low_dim.hdf5"] = (data, "application/octet-stream")
    assert cli.main(["verify", "tiny-task"]) == 1
    assert cli.main(["fetch", "tiny-task", "--no-progress"]) == 0
    assert entry.path().read_bytes() == data
    assert cli.main(["verify", "tiny-task"]) == 0
    assert cli.main(["fetch", "tiny_robomimic", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already present, skipped" in out and "1/1 datasets ok" in out
    assert cli.main(["verify", "no-such-thing"]) == 2


def test_cli_fetch_reports_what_cannot_be_fetched(root, monkeypatch, capsys):
    monkeypatch.setitem(registry.DATASETS, "nothing", ExternalDataset(
        key="nothing", format="robomimic_hdf5", files=(), description="no public release"))
    monkeypatch.setitem(registry.DATASETS, "by_hand", ExternalDataset(
        key="by_hand", format="awac_npy", files=(RemoteFile("awac/a.npy", ""),), description="x"))
    monkeypatch.setitem(registry.DATASETS, "mini", ExternalDataset(
        key="mini", format="minari", files=(), description="x", options={"dataset_id": "D4RL/pen/expert-v2"}))
    assert cli.main(["fetch", "nothing"]) == 1
    assert cli.main(["fetch", "by_hand"]) == 1
    out = capsys.readouterr().out
    assert "no download is registered" in out and "place the file by hand at" in out
    try:
        import minari  # noqa: F401
    except ImportError:
        assert cli.main(["fetch", "mini"]) == 1
        assert "minari download D4RL/pen/expert-v2" in capsys.readouterr().out


def test_members_of_a_failed_archive_are_not_retried(root, server, monkeypatch, capsys):
    url = f"{server.url}/gone.zip"  # 404
    monkeypatch.setitem(registry.DATASETS, "two", ExternalDataset(
        key="two", format="awac_npy", description="x",
        files=(RemoteFile("awac/a.npy", url, member="a.npy"), RemoteFile("awac/b.npy", url, member="b.npy"))))
    assert cli.main(["fetch", "two"]) == 1
    assert len(server.requests) == 1
    out = capsys.readouterr().out
    assert "HTTP 404" in out and "b.npy: skipped" in out and "not fetched: two" in out


def test_fetch_of_an_embedded_dataset_generates_instead(root, capsys):
    entry = registry.DATASETS[get_task("lift").dataset]
    entry.path().parent.mkdir(parents=True)
    entry.path().write_bytes(b"stand-in")  # present: ensure_generated must not run the expert
    assert cli.main(["fetch", "lift_scripted"]) == 0
    out = capsys.readouterr().out
    assert "generated on this machine" in out and "python -m expo.data generate lift" in out
    assert f"{entry.path()}: already present, skipped" in out


def test_fetch_of_a_task_means_the_papers_data_and_verify_checks_both():
    """lift, threading and stack run on embedded data by default; fetch <task> downloads the file
    the paper used, verify <task> checks both."""
    assert fetch.datasets_for("lift") == {"robomimic_lift_ph": ("lift",)}
    assert fetch.datasets_for("threading") == {"mimicgen_threading": ("threading",)}
    assert fetch.datasets_for("stack") == {"mimicgen_stack": ("stack",)}
    assert list(fetch.datasets_for("stack", everything="tasks")) == ["stack_scripted", "mimicgen_stack"]


def test_fetch_all_means_the_paper_tasks_external_downloads():
    keys = fetch.datasets_for("all")
    assert set(keys) == {paper_dataset(TASKS[t]) for t in TASKS if TASKS[t].paper_task}
    assert {"robomimic_lift_ph", "mimicgen_threading", "mimicgen_stack"} <= set(keys)
    assert not any(isinstance(registry.DATASETS[k], registry.GeneratedDataset) for k in keys)
    assert keys["mimicgen_stack"] == ("stack",) and keys["robomimic_can_mh"] == ("can",)
    assert fetch.datasets_for("square") == {"robomimic_square_ph": ("square",)}
    with pytest.raises(KeyError, match="unknown task or dataset"):
        fetch.datasets_for("nope")
