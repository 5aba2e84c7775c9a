"""experiments/gpu/weighting_study.sh's detached mode (DETACH=1), on the debug world: the device
tool ends what a call leaves running except a process in a session of its own, so a comparison
started that way trains on between calls instead of being stopped and resumed at every call."""

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_detached_study_trains_on_after_its_call_and_the_next_call_waits_for_it(debug_env, tmp_path):
    work = tmp_path / "work"
    (work / "runs" / "study").mkdir(parents=True)
    (work / "experiments").symlink_to(REPO / "experiments")
    (work / "runs" / "study" / "data.done").touch()  # the debug world's data and cache are built
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "OUT": str(tmp_path / "out"),
        "DETACH": "1",
        "PRESET": "experiments/debug.yaml",
        "DATA_ARGS": " ".join(debug_env["overrides"]),
        "STEPS": "4",
        "EVAL_CLIPS": "4",
        "PARALLEL": "1",  # the two runs one after the other: the comparison outlasts the first call
        "WEIGHTINGS": "[bsa,min_snr]",
        "GRAPHS": "false",
    }
    script = ["bash", str(REPO / "experiments/gpu/weighting_study.sh")]
    study = work / "runs" / "study"
    pid = None
    try:
        first = subprocess.Popen(
            script, cwd=work, env=env | {"DEADLINE_S": "50", "PACK_S": "40"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out[-3000:] + err[-3000:]
        with contextlib.suppress(ProcessLookupError):  # as the device tool ends what a call left running
            os.killpg(first.pid, signal.SIGKILL)
        pid = int((study / "compare.pid").read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]  # (not a zombie)
        assert state != "Z"  # the comparison still trains after the call returned (no file if gone)
        phases = (study / "logs" / "phases.txt").read_text()
        assert "compare runs on after this call" in phases, phases
        second = subprocess.run(
            script, cwd=work, env=env | {"DEADLINE_S": "600"}, capture_output=True, text=True, timeout=900
        )
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        phases = (study / "logs" / "phases.txt").read_text()
        assert f"compare running since an earlier call (pid {pid})" in phases, phases
        assert phases.count("compare, detached") == 1  # one comparison, never started twice
        assert "compare exit 0" in phases, phases
        # each run's last progress line in the call's output (where a detached comparison stands)
        assert re.search(r"^== \S+   guided-seed0: +\S", phases, re.M), phases
        third = subprocess.run(  # a call after the end packs, and starts nothing again
            script, cwd=work, env=env | {"DEADLINE_S": "100"}, capture_output=True, text=True, timeout=300
        )
        assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
        phases = (study / "logs" / "phases.txt").read_text()
        assert "compare finished in an earlier call" in phases and phases.count("compare, detached") == 1
        assert "study: the comparison's own" in phases  # written by bsa compare at its end, not again
        home = tmp_path / "home"
        with tarfile.open(tmp_path / "out" / "study.tar.gz") as tar:
            names = tar.getnames()
            tar.extractall(home, filter="data")
        assert "./pack/bsa-seed0/eval.jsonl" in names and "./pack/study/summary.json" in names, names
        # the runs' embeddings come home beside the records: the study computed again at home (FAD
        # differences included) is the one computed where the runs are
        pieces = sorted((tmp_path / "out").glob("embeddings.tar.part-*"))
        assert pieces, sorted(p.name for p in (tmp_path / "out").iterdir())
        unpacked = subprocess.run(
            f"cat {' '.join(map(str, pieces))} | tar x -C {home / 'pack'}", shell=True, capture_output=True
        )
        assert unpacked.returncode == 0, unpacked.stderr
        from bsa.report.study import study_of_comparisons

        there = study_of_comparisons([next((study / "compare").iterdir())])
        again = study_of_comparisons([home / "pack"])
        assert again["steps"] == there["steps"]
        assert "fad_vs_teacher" in again["steps"]["4"]["min_snr"]["diff_to_bsa"]
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_pack_embeddings_stores_identical_files_once_in_pieces_that_cat_puts_back(tmp_path):
    """pack_embeddings.py: every run's embeddings/*.safetensors under the comparison, a file identical
    to one stored before as a hard link, in pieces of at most --piece-mib that `cat | tar x` restores
    byte for byte; above --max-mib nothing is written."""
    import hashlib

    comparison, out = tmp_path / "cmp", tmp_path / "out"
    out.mkdir()
    files = {
        "bsa-seed0/embeddings/teacher.safetensors": b"T" * 3000,
        "min_snr-seed0/embeddings/teacher.safetensors": b"T" * 3000,  # the same teacher reference
        "bsa-seed0/embeddings/stage06_4steps.safetensors": bytes(range(256)) * 20,
        "min_snr-seed0/embeddings/stage06_4steps.safetensors": bytes(range(255, -1, -1)) * 20,
        "study/summary.json": b"{}",  # not an embedding
    }
    for name, data in files.items():
        (comparison / name).parent.mkdir(parents=True, exist_ok=True)
        (comparison / name).write_bytes(data)
    script = [sys.executable, str(REPO / "experiments/gpu/pack_embeddings.py"), str(out), str(comparison)]
    done = subprocess.run([*script, "--piece-mib", "0.004"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "4 embeddings (1 stored once before)" in done.stdout, done.stdout
    pieces = sorted(out.glob("embeddings.tar.part-*"))
    joined = b"".join(p.read_bytes() for p in pieces)
    piece = int(0.004 * 2**20)
    assert [p.name[-2:] for p in pieces] == ["aa", "ab", "ac", "ad", "ae"][: -(-len(joined) // piece)]
    assert len(pieces) > 1 and all(p.stat().st_size <= piece for p in pieces)
    with tarfile.open(fileobj=io.BytesIO(joined)) as tar:
        links = [m.name for m in tar.getmembers() if m.islnk()]
    assert links == ["min_snr-seed0/embeddings/teacher.safetensors"]
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(f"cat {' '.join(map(str, pieces))} | tar x -C {home}", shell=True, check=True)
    for name, data in files.items():
        restored = home / name
        if name.endswith(".safetensors"):
            assert hashlib.sha256(restored.read_bytes()).digest() == hashlib.sha256(data).digest(), name
        else:
            assert not restored.exists()
    for p in pieces:
        p.unlink()
    done = subprocess.run([*script, "--max-mib", "0.001"], capture_output=True, text=True)
    assert "not packed" in done.stdout and not list(out.iterdir())
