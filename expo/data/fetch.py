"""Downloading the public datasets from their official locations: `python -m expo.data fetch <name>`.

Why it is built this way:
  - The files are large (the D4RL AntMaze files are ~1 GB each) and their hosts are slow, so a
    download is RESUMABLE: bytes go to "<file>.part", which an interruption leaves behind; the next
    fetch asks for the rest with `Range: bytes=<have>-` and appends when the server answers 206
    (Partial Content), or starts over when it answers 200 (a server that ignores Range).
  - A reader must never see half a file: the finished ".part" is checked (size / sha256 when the
    registry knows them) and only then renamed onto the final path (os.replace, atomic).
  - Some datasets only exist inside an archive (RemoteFile.member): the archive is downloaded once
    (resumably) to data_root()/downloads/ and kept, so the several files a release holds are unpacked
    from one download; each member is extracted to a temp file and renamed into place.
  - Google Drive answers a large file with an HTML "can't scan for viruses" page first; the confirm
    step is done with the standard library (the page's download form or confirm token). When a host
    still answers HTML instead of data, fetch stops with a one-line error saying where to put the
    file by hand, rather than saving an HTML page under a data file's name.
  - Parallel fetches of one file wait on an fcntl lock ("<file>.lock") instead of both appending to
    the same ".part".
Names: a task of expo/protocol.py (its dataset), a registry key, or "all" (the external datasets of
the paper's 12 tasks). Embedded (generated) datasets are generated here instead of downloaded.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html.parser
import http.client
import http.cookiejar
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from expo.data.errors import DatasetError
from expo.data.paths import data_root
from expo.data.registry import DATASETS, ExternalDataset, GeneratedDataset, RemoteFile
from expo.protocol import PAPER_TASKS, TASKS, paper_dataset

CHUNK = 1 << 20
USER_AGENT = "expo-suite-fetch/0.1 (python urllib)"
RETRY_DELAY = 1.0  # seconds before the first retry; doubled each time, at most 10
_HTML_LIMIT = 2 << 20  # bytes of an HTML answer read to look for Google Drive's confirm form


class FetchError(DatasetError):
    """A download or extraction that cannot finish. The message is one line naming the fix."""


class _Transient(Exception):
    """A failure worth retrying: connection cut, timeout, 5xx. The ".part" stays for resuming."""


# ------------------------------------------------------------------------------------------ names


def datasets_for(name: Optional[str], everything: str = "paper") -> dict[str, tuple[str, ...]]:
    """Registry keys `name` stands for -> the tasks that use each (every task of TASKS, not only
    the ones asked for, so a table can say who depends on a dataset).

    name: a task, a dataset key, or "all"/None. everything == "paper" (what fetch downloads): a
    task means the dataset the paper used (`protocol.paper_dataset`: robomimic Lift PH for lift, the
    MimicGen files for threading and stack, whose defaults are embedded data), "all" the paper's
    datasets of the 12 tasks. everything == "tasks" (what verify checks): a task means its default
    dataset and the paper's, "all" those of every task in TASKS. Keys named by a task but absent
    from the registry are returned too; callers report them.
    """
    def keys_of(task: str) -> list[str]:
        spec = TASKS[task]
        paper = paper_dataset(spec)
        return [paper] if everything == "paper" else list(dict.fromkeys((spec.dataset, paper)))

    users: dict[str, list[str]] = {}
    for task in TASKS:
        for key in dict.fromkeys((TASKS[task].dataset, paper_dataset(TASKS[task]))):
            users.setdefault(key, []).append(task)
    if name is None or name == "all":
        tasks = PAPER_TASKS if everything == "paper" else tuple(TASKS)
        keys = list(dict.fromkeys(k for t in tasks for k in keys_of(t)))
    elif name in TASKS:
        keys = keys_of(name)
    elif name in DATASETS:
        keys = [name]
    else:
        raise KeyError(
            f"unknown task or dataset {name!r}; tasks: {', '.join(TASKS)}; datasets: {', '.join(sorted(DATASETS))}"
        )
    return {k: tuple(users.get(k, ())) for k in keys}


# ---------------------------------------------------------------------------------------- helpers


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on "<path>.lock" (released when the lock file closes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def part_path(path: Path) -> Path:
    """Where the bytes of an unfinished download of `path` are kept."""
    return path.with_name(path.name + ".part")


def is_google_drive(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


def _drive_file_id(url: str) -> Optional[str]:
    parts = urllib.parse.urlsplit(url)
    ids = urllib.parse.parse_qs(parts.query).get("id")
    if ids:
        return ids[0]
    m = re.search(r"/file/d/([^/]+)", parts.path)
    return m.group(1) if m else None


class _FormParser(html.parser.HTMLParser):
    """Collects Drive's <form id="download-form" action=...> and its hidden inputs, and hrefs."""

    def __init__(self):
        super().__init__()
        self.action: Optional[str] = None
        self.fields: dict[str, str] = {}
        self.hrefs: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id") == "download-form" or "download" in (a.get("action") or "")):
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def drive_confirm_url(page: str, url: str) -> Optional[str]:
    """The URL that actually serves a large Google Drive file, from Drive's warning page `page`.

    Drive answers files too large to virus-scan with an HTML page holding either a download form
    (action drive.usercontent.google.com/download, hidden id / export / confirm / uuid inputs) or,
    on older pages, a link carrying a `confirm=<token>` query. Returns None when neither is there.
    """
    parser = _FormParser()
    parser.feed(page)
    if parser.action and parser.fields:
        action = urllib.parse.urljoin(url, parser.action)
        return f"{action}?{urllib.parse.urlencode(parser.fields)}"
    for href in parser.hrefs:
        if "confirm=" in href:
            return urllib.parse.urljoin(url, href)
    m = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if m:
        sep = "&" if urllib.parse.urlsplit(url).query else "?"
        return f"{url}{sep}confirm={m.group(1)}"
    return None


def archive_name(url: str) -> str:
    """The file name an archive url is saved under in data_root()/downloads."""
    if is_google_drive(url) and _drive_file_id(url):
        return f"gdrive-{_drive_file_id(url)}"
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return name or hashlib.sha256(url.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------- download


def _is_html(resp) -> bool:
    return (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")


def _content_range(value: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """(first byte, total) of a Content-Range header like "bytes 100-199/1000" or "bytes */1000"."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    return start, (int(m.group(2)) if m.group(2) != "*" else None)


class _Downloader:
    """One download of `url` into `dest` via `dest.part` (see the module docstring)."""

    def __init__(self, url: str, dest: Path, size: Optional[int], progress: bool, timeout: float,
                 hint: str, log: Callable[[str], None]):
        self.url, self.dest, self.size, self.progress, self.timeout = url, dest, size, progress, timeout
        self.hint, self.log = hint, log
        self.part = part_path(dest)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _request(self, url: str, start: int):
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            return self.opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416:
                return e  # Range Not Satisfiable: handled by the caller (the .part may be complete)
            if e.code >= 500 or e.code == 429:
                raise _Transient(f"HTTP {e.code} {e.reason}") from None
            raise FetchError(f"{url}: HTTP {e.code} {e.reason}; check the url in expo/data/registry.py") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise _Transient(f"cannot reach {urllib.parse.urlsplit(url).hostname}: {reason}") from None

    def _open(self, start: int):
        """The response for bytes start.. of the file, past Google Drive's confirm page."""
        resp = self._request(self.url, start)
        if resp.status != 416 and _is_html(resp):
            page = resp.read(_HTML_LIMIT).decode("utf-8", "replace")
            resp.close()
            confirm = drive_confirm_url(page, resp.geturl()) if is_google_drive(self.url) else None
            if confirm is None and is_google_drive(self.url) and _drive_file_id(self.url):
                confirm = ("https://drive.usercontent.google.com/download?"
                           + urllib.parse.urlencode({"id": _drive_file_id(self.url), "export": "download", "confirm": "t"}))
            if confirm is not None:
                resp = self._request(confirm, start)
            if confirm is None or (resp.status != 416 and _is_html(resp)):
                resp.close()
                raise FetchError(
                    f"{self.url} answered with an HTML page instead of the file (quota, login or a changed "
                    f"link); download it by hand in a browser and save it as {self.dest}"
                )
        return resp

    def run(self) -> None:
        """Bring self.part to the complete file; raise _Transient on a cut (the .part is kept)."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if self.size is not None and have > self.size:
            self.log(f"{self.part} is larger than the expected {self.size} bytes; starting over")
            self.part.unlink()
            have = 0
        if self.size is not None and have == self.size:
            return  # a previous run got every byte but stopped before the checks and the rename
        resp = self._open(have)
        with contextlib.closing(resp):
            if resp.status == 416:
                _, total = _content_range(resp.headers.get("Content-Range"))
                if have and total == have:
                    return
                self.log(f"server refused to resume {self.part.name} at byte {have}; starting over")
                self.part.unlink(missing_ok=True)
                return self.run()
            if resp.status == 206:
                start, total = _content_range(resp.headers.get("Content-Range"))
                if start != have:
                    self.log(f"server resumed at byte {start}, not {have}; starting over")
                    self.part.unlink(missing_ok=True)
                    return self.run()
                mode = "ab"
                if have:
                    self.log(f"resuming {self.dest.name} at byte {have}")
            elif resp.status == 200:
                if have:
                    self.log(f"server ignored the Range request; restarting {self.dest.name} from byte 0")
                have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise FetchError(f"{self.url}: unexpected HTTP status {resp.status}; {self.hint}")
            if self.size is not None and total is not None and total != self.size:
                raise FetchError(
                    f"{self.url} serves {total} bytes but the registry expects {self.size}; the file changed "
                    f"upstream or the registry entry is wrong (expo/data/registry.py)"
                )
            got = 0
            with open(self.part, mode) as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=self.dest.name, disable=not self.progress, leave=False,
            ) as bar:
                try:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        got += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as e:
                    raise _Transient(f"connection lost after {have + got} bytes ({type(e).__name__})") from None
            if total is not None and have + got < total:
                raise _Transient(f"connection closed after {have + got} of {total} bytes")


def download(
    url: str,
    dest,
    size: Optional[int] = None,
    sha256: Optional[str] = None,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 60.0,
    hint: str = "run the same fetch command again to resume",
    log: Callable[[str], None] = print,
) -> Path:
    """Download `url` to `dest` resumably (via "<dest>.part"), check it, and rename it into place.

    An interruption is retried `retries` times (resuming each time); after that FetchError says the
    .part is kept and how to resume. A size or sha256 mismatch deletes the .part (its bytes are not
    the registered file, so resuming would not help) and raises FetchError. Returns dest.
    """
    dest = Path(dest)
    with _locked(dest):
        job = _Downloader(url, dest, size, progress, timeout, hint, log)
        for attempt in range(retries + 1):
            try:
                job.run()
                break
            except _Transient as e:
                have = job.part.stat().st_size if job.part.exists() else 0
                if attempt == retries:
                    kept = f"{have} bytes kept in {job.part}" if job.part.exists() else "nothing downloaded yet"
                    raise FetchError(f"{url}: {e}; {kept}: {hint}") from None
                log(f"{dest.name}: {e}; retrying ({attempt + 1}/{retries})")
                time.sleep(min(RETRY_DELAY * 2 ** attempt, 10))
        _check(job.part, size, sha256, what=url)
        os.replace(job.part, dest)
    log(f"{dest}: saved ({dest.stat().st_size:,} bytes" + (", sha256 ok)" if sha256 else ")"))
    return dest


def _check(path: Path, size: Optional[int], sha256: Optional[str], what: str) -> None:
    """Size / sha256 of a finished temp file; a wrong one is deleted (resuming cannot repair it)."""
    got = path.stat().st_size
    if size is not None and got != size:
        path.unlink()
        raise FetchError(f"{what}: got {got} bytes, the registry expects {size}; deleted it, rerun fetch to retry")
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256.lower():
            path.unlink()
            raise FetchError(
                f"{what}: sha256 {digest} differs from the registry's {sha256}; deleted it, rerun fetch to retry"
            )


# ------------------------------------------------------------------------------------- archives


def extract_member(archive: Path, member: str, dest: Path, size: Optional[int] = None,
                   sha256: Optional[str] = None) -> Path:
    """Copy `member` of a zip / tar(.gz, .bz2, .xz) archive to `dest` atomically, then check it.

    The archive type is read from its content, not its name (Google Drive names say nothing).
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    bad = f"{archive}: corrupt or unreadable archive; delete it and rerun fetch"
    try:
        if zipfile.is_zipfile(archive):
            try:
                with zipfile.ZipFile(archive) as zf:
                    names = zf.namelist()
                    with zf.open(_find_member(names, member, archive)) as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise FetchError(f"{bad} ({e})") from None
        elif tarfile.is_tarfile(archive):
            try:
                with tarfile.open(archive, "r:*") as tf:
                    name = _find_member(tf.getnames(), member, archive)
                    info = tf.getmember(name)
                    src = tf.extractfile(info) if info.isfile() else None
                    if src is None:
                        raise FetchError(f"{archive}: member {name!r} is not a regular file")
                    with src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
            except (tarfile.TarError, EOFError, OSError) as e:
                raise FetchError(f"{bad} ({e})") from None
        else:
            raise FetchError(f"{archive}: neither a zip nor a tar archive; delete it and rerun fetch")
        _check(tmp, size, sha256, what=f"{archive}:{member}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _find_member(names: list[str], member: str, archive: Path) -> str:
    def norm(n: str) -> str:
        return n[2:] if n.startswith("./") else n

    for n in names:
        if norm(n) == norm(member):
            return n
    similar = [n for n in names if Path(n).name == Path(member).name][:5]
    raise FetchError(
        f"{archive} has no member {member!r}" + (f" (similar: {', '.join(similar)})" if similar else "")
        + "; fix the member name in expo/data/registry.py"
    )


# ---------------------------------------------------------------------------------------- fetch


def fetch_file(rf: RemoteFile, force: bool = False, progress: bool = True, retries: int = 2,
               hint: str = "run the same fetch command again to resume",
               log: Callable[[str], None] = print, fresh_archives: Optional[set] = None) -> Path:
    """Make data_root()/rf.relpath exist: skip it when present (size permitting), else download it,
    or download its archive to data_root()/downloads and extract the member.

    With `force`, an archive is downloaded again unless it is in `fresh_archives` (the archives this
    run already downloaded, shared by the caller so several members mean one download).
    """
    fresh_archives = set() if fresh_archives is None else fresh_archives
    dest = rf.path()
    if dest.is_file() and not force:
        have = dest.stat().st_size
        if rf.size is None or have == rf.size:
            log(f"{dest}: already present, skipped")
            return dest
        log(f"{dest}: has {have} bytes, the registry expects {rf.size}; downloading it again")
    if not rf.url:
        raise FetchError(f"{rf.relpath}: no official download url is registered; place the file by hand at {dest}")
    if rf.member is None:
        log(f"downloading {rf.url} -> {dest}")
        return download(rf.url, dest, size=rf.size, sha256=rf.sha256, progress=progress, retries=retries,
                        hint=hint, log=log)
    archive = data_root() / "downloads" / archive_name(rf.url)
    if force and archive not in fresh_archives:
        archive.unlink(missing_ok=True)
    if archive.is_file():
        log(f"{archive}: archive already downloaded")
    else:
        log(f"downloading {rf.url} -> {archive}")
        download(rf.url, archive, progress=progress, retries=retries, hint=hint, log=log)
        fresh_archives.add(archive)
    log(f"extracting {rf.member} -> {dest}")
    with _locked(dest):
        return extract_member(archive, rf.member, dest, size=rf.size, sha256=rf.sha256)


def fetch_entry(entry, force: bool = False, progress: bool = True, retries: int = 2,
                log: Callable[[str], None] = print, failed_urls: Optional[set] = None,
                fresh_archives: Optional[set] = None) -> bool:
    """Fetch every file of a registry entry; False (after saying why) when any could not be fetched.

    `failed_urls` (shared across entries by fetch()) remembers urls that already failed in this run,
    so the members of one unreachable archive are not each retried against it.
    """
    failed_urls = set() if failed_urls is None else failed_urls
    fresh_archives = set() if fresh_archives is None else fresh_archives
    if isinstance(entry, GeneratedDataset):
        log(f"{entry.key}: generated on this machine by the scripted '{entry.expert}' expert, not downloaded "
            f"(the command: {entry.fix_hint()})")
        from expo.data import ensure_generated

        summary = ensure_generated(entry, progress=progress)
        log(f"{entry.path()}: " + ("already present, skipped" if summary is None else
                                   f"generated {summary['num_demos']} demos"))
        return True
    if entry.format == "minari":
        return _fetch_minari(entry, log, force=force)
    if not entry.files:
        log(f"{entry.key}: no download is registered for this dataset yet ({entry.description}); "
            f"add its files to expo/data/registry.py")
        return False
    hint = f"rerun `python -m expo.data fetch {entry.key}` (it resumes a partial download)"
    ok = True
    for rf in entry.files:
        if rf.url and rf.url in failed_urls and not rf.path().is_file():
            log(f"{rf.path()}: skipped, {rf.url} already failed above")
            ok = False
            continue
        try:
            fetch_file(rf, force=force, progress=progress, retries=retries, hint=hint, log=log,
                       fresh_archives=fresh_archives)
        except FetchError as e:
            log(f"error: {e}")
            failed_urls.add(rf.url)
            ok = False
    return ok


def minari_id(entry: ExternalDataset) -> Optional[str]:
    return entry.options.get("dataset_id") or entry.options.get("minari_id")


def _fetch_minari(entry: ExternalDataset, log: Callable[[str], None], force: bool = False) -> bool:
    """Minari datasets live in minari's own store; its client downloads them. With `force` a dataset that
    is there is downloaded again (minari skips a local copy otherwise, damaged or not)."""
    ident = minari_id(entry)
    command = f"`minari download {ident or '<dataset id>'}{' --force' if force else ''}`"
    try:
        import minari
    except ImportError:
        log(f"{entry.key}: a Minari dataset, fetched by minari: `pip install minari` then {command}")
        return False
    if not ident:
        log(f"{entry.key}: a Minari dataset without options['dataset_id'] in expo/data/registry.py; add it, then {command}")
        return False
    log(f"{entry.key}: downloading Minari dataset {ident} (same as {command})")
    try:
        minari.download_dataset(ident, force_download=force)
    except Exception as e:  # minari's own errors (network, unknown id) are reported, not crashed on
        log(f"error: {entry.key}: minari could not download {ident} ({type(e).__name__}: {e}); run {command}")
        return False
    return True


def fetch(name: str, force: bool = False, progress: bool = True, retries: int = 2,
          log: Callable[[str], None] = print) -> list[str]:
    """Fetch everything `name` stands for (datasets_for); returns the keys that could not be fetched."""
    failed, failed_urls, fresh_archives = [], set(), set()
    for key, tasks in datasets_for(name, everything="paper").items():
        entry = DATASETS.get(key)
        if entry is None:
            log(f"{key}: named by task(s) {', '.join(tasks)} but not registered in expo/data/registry.py")
            failed.append(key)
            continue
        if name == "all" and isinstance(entry, GeneratedDataset):
            log(f"{key}: generated on this machine, not downloaded (not part of `fetch all`); "
                f"`python -m expo.data fetch {tasks[0] if tasks else key}` generates it")
            continue
        if not fetch_entry(entry, force=force, progress=progress, retries=retries, log=log, failed_urls=failed_urls,
                           fresh_archives=fresh_archives):
            failed.append(key)
    return failed
