"""Files that survive a kill -9 or a power cut: write to a temporary, fsync, rename, fsync the folder.

Every checkpoint, exported stage, shipped model and record of bsa goes through here, so "what
survives what" (README) is decided in one place:
* :func:`replace_durably` — a finished temporary file or folder becomes ``dst`` in one rename,
  after its bytes (every file of a folder) reached the disk; the old ``dst`` stays intact until then.
* :func:`remove_stale_temporaries` — what a killed writer left behind (``*.tmp*``) is removed
  at the next start.
* :func:`read_jsonl` / :func:`append_jsonl` — append-only records whose torn last line (a kill
  mid-write) is repaired with a warning that names the file.
* :func:`exclusive` — one writer at a time for a file that several processes would compute alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import warnings
from pathlib import Path

TMP_MARK = ".tmp"


def temporary_path(dst: str | Path) -> Path:
    """A temporary beside ``dst`` that no other writer uses: writers of one file at once (two
    commands sharing a latent cache, the cache's workers finishing together) each rename their own,
    where one shared name let a writer rename another's half-written bytes or find its own gone."""
    import uuid

    dst = Path(dst)
    return dst.with_name(f"{dst.name}{TMP_MARK}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Persist a folder's entries (a rename is durable only once its folder is synced)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms that cannot open folders (Windows): nothing more to do
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself, a file) and every folder."""
    path = Path(path)
    if path.is_file():
        fsync_file(path)
        return
    for root, _, files in os.walk(path):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_dir(root)


def replace_durably(tmp: str | Path, dst: str | Path) -> Path:
    """Make the finished temporary ``tmp`` (file or folder) the new ``dst``: fsync its content, then
    one rename (a folder ``dst`` that exists is first moved aside, then removed), then fsync the
    parent folder. A kill at any moment leaves either the old or the new ``dst`` complete."""
    tmp, dst = Path(tmp), Path(dst)
    fsync_tree(tmp)
    if tmp.is_dir() and dst.exists():
        old = dst.with_name(dst.name + TMP_MARK + "-old")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
        tmp.rename(dst)
        fsync_dir(dst.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    return dst


def is_temporary(path: Path) -> bool:
    return TMP_MARK in path.name


def remove_stale_temporaries(folder: str | Path, pattern: str = "**/*") -> list[Path]:
    """Remove what killed writers left under ``folder`` (names containing ``.tmp``); returns them.
    Call it only where no other writer is active (the start of a run, on global rank 0)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.glob(pattern) if is_temporary(p) and not is_temporary(p.parent))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


class RecordError(ValueError):
    """A record file that cannot be read (a broken line that is not the last one)."""


def read_jsonl(path: str | Path, repair: bool = True) -> list[dict]:
    """The records of an append-only JSON-lines file. A torn last line (a kill mid-append) is
    dropped with a warning naming the file, and (``repair``) cut from the file; a broken line
    before the last is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines()
    records, good_end = [], 0
    for k, line in enumerate(lines):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                if k == len(lines) - 1:
                    warnings.warn(
                        f"{path}: line {k + 1} is torn (an interrupted write: {e.msg}); it is dropped",
                        stacklevel=2,
                    )
                    if repair:
                        tmp = path.with_name(path.name + TMP_MARK)
                        tmp.write_text(text[:good_end])
                        replace_durably(tmp, path)
                    return records
                raise RecordError(f"{path}: line {k + 1} is not valid JSON ({e.msg})") from None
        good_end += len(line) + 1
    return records


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record as one line and fsync it (after repairing a torn last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size:
        read_jsonl(path)  # repairs a torn tail, which the new line would otherwise glue onto
        if not path.read_bytes().endswith(b"\n"):
            with open(path, "a") as f:
                f.write("\n")
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def exclusive(path: str | Path):
    """Hold an exclusive lock on ``path`` + ".lock" for the block (``fcntl.flock``: released by the
    kernel when the holder dies, so a killed process never leaves it held). Runs that share one
    computed file (a comparison's teacher reference) take it around "load it, else compute and write
    it": the first computes, the others wait and load."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
