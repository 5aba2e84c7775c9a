"""experiments/gpu/weighting_study.sh's detached mode (DETACH=1), on the debug world: the device
tool ends what a call leaves running except a process in a session of its own, so a comparison
started that way trains on between calls instead of being stopped and resumed at every call."""

import contextlib
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
        assert re.search(r"^== \S+   guided-seed0: \S", phases, re.M), phases
        third = subprocess.run(  # a call after the end packs, and starts nothing again
            script, cwd=work, env=env | {"DEADLINE_S": "100"}, capture_output=True, text=True, timeout=300
        )
        assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
        phases = (study / "logs" / "phases.txt").read_text()
        assert "compare finished in an earlier call" in phases and phases.count("compare, detached") == 1
        assert "study: the comparison's own" in phases  # written by bsa compare at its end, not again
        with tarfile.open(tmp_path / "out" / "study.tar.gz") as tar:
            names = tar.getnames()
        assert "./pack/bsa-seed0/eval.jsonl" in names and "./pack/study/summary.json" in names, names
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
