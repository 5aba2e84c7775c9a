"""A distillation run on disk: what determines its stages (the fingerprint), and who may clean it.

A run folder is resumed by name. What its finished stages and checkpoints hold depends on more than
the name: the teacher's weights, the data, the learning rate, the batch size, the steps per stage…
The first invocation writes those facts to ``fingerprint.json``; every later one compares and
refuses to reuse the folder when they differ, listing the keys. ``distill.target_steps`` is not in
it (a run may be extended to fewer steps: its finished stages stay valid), nor are the settings
that do not change the weights (evaluation, logging, checkpoint interval, ``stop_after``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bsa.durable import TMP_MARK, replace_durably

FINGERPRINT = "fingerprint.json"

# the config keys that determine the weights of a run's stages
FINGERPRINT_KEYS = (
    "distill.teacher_steps",
    "distill.weighting",
    "distill.bsa_floor",
    "distill.bsa_gamma",
    "distill.min_snr_gamma",
    "distill.guidance_scale",
    "distill.guided_stage",
    "distill.guidance_min",
    "distill.guidance_max",
    "distill.steps_per_stage",
    "distill.guided_steps",
    "distill.lr",
    "distill.weight_decay",
    "distill.batch_size",
    "distill.ema_decay",
    "trainer.seed",
    "trainer.precision",
    "trainer.devices",
    "trainer.num_nodes",
    "schedule",
)
# keys added after runs existed: part of the fingerprint only when set to other than their default,
# so that a run made before them continues
LATER_KEYS = {
    "distill.teacher_float32": False,
    "distill.student_prediction": "",
    "distill.fresh_data_order": False,
    "distill.grid_power": 1.0,
    "distill.guided_weighting": "",
    "trainer.low_precision_norms": False,
}


def run_name(cfg) -> str:
    """The run's folder under ``paths.output_root``: ``distill.run_name``, else
    ``<preset>-<weighting>-seed<seed>``, the weighting with its hyper-parameters where they are not
    what its name alone means (``embedded-cpu-bsa-floor0.1-gamma20-seed0``), and the guided stage's
    own where it has one (``-guided-min_snr``, ``distill.guided_weighting``). The same name resumes
    the run."""
    from bsa.config import weighting_spec

    d = cfg.distill
    guided = d.guided_weighting_label
    return d.run_name or "-".join(
        [
            cfg.preset,
            run_slug(weighting_spec(d.weighting, d.weighting_kwargs)),
            *(["guided", run_slug(guided)] if guided else []),
            f"seed{cfg.trainer.seed}",
        ]
    )


def run_slug(spec: str) -> str:
    """A run folder name for a weighting spec: "bsa(floor=0.1,gamma=inf)" → "bsa-floor0.1-gammainf"."""
    from bsa.config import parse_weighting

    name, params = parse_weighting(spec)
    return "-".join([name, *(f"{k}{v:g}" for k, v in params.items())])


def member_run_name(spec: str, seed: int) -> str:
    """The run folder of one weighting of a comparison: ``<run_slug(spec)>-seed<seed>``."""
    return f"{run_slug(spec)}-seed{seed}"


def population_name(specs: list[str], seed: int) -> str:
    """A population's own folder (its checkpoints and logs): ``population-seed<seed>-<8 hex of its
    members>`` — the same members resume it."""
    import hashlib

    digest = hashlib.sha256("\n".join(specs).encode()).hexdigest()[:8]
    return f"population-seed{seed}-{digest}"


class RunMismatchError(ValueError):
    """A run folder was made with other settings than the ones given now."""


def _get(cfg, dotted: str) -> Any:
    from dataclasses import asdict, is_dataclass

    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return asdict(value) if is_dataclass(value) else value


def fingerprint(cfg, teacher_sha256: str, data_identity: dict) -> dict[str, Any]:
    """The facts that determine a run's stages: the keys above, the teacher's weights (content,
    not path) and the latent cache's identity (content, not path)."""
    facts = {key: _get(cfg, key) for key in FINGERPRINT_KEYS}
    facts.update({k: _get(cfg, k) for k, default in LATER_KEYS.items() if _get(cfg, k) != default})
    facts["models.teacher (weights sha256)"] = teacher_sha256
    facts["data (latent cache identity)"] = data_identity
    return json.loads(json.dumps(facts, default=str))  # the form it has once read back


def differences(stored: dict, current: dict) -> list[str]:
    out = []
    for key in sorted(set(stored) | set(current)):
        if stored.get(key) != current.get(key):
            old, new = stored.get(key, "(absent)"), current.get(key, "(absent)")
            if isinstance(old, dict) and isinstance(new, dict):
                subs = [s for s in sorted(set(old) | set(new)) if old.get(s) != new.get(s)]
                out.append(f"{key}: " + ", ".join(f"{s} {old.get(s)!r} → {new.get(s)!r}" for s in subs))
            else:
                out.append(f"{key}: {old!r} → {new!r}")
    return out


def check_or_write_fingerprint(run_dir: Path, current: dict, write: bool = True) -> str:
    """Compare with the run's stored fingerprint (refusing on a difference) or store it for a new
    run. Returns what was done: "new", "same" or "adopted" (a folder from before fingerprints)."""
    path = Path(run_dir) / FINGERPRINT
    if path.is_file():
        stored = json.loads(path.read_text())
        diffs = differences(stored, current)
        if diffs:
            raise RunMismatchError(
                f"run folder {run_dir} was made with other settings; its stages and checkpoints would "
                "be reused without them:\n  "
                + "\n  ".join(diffs)
                + "\nrerun with the original settings to continue it, or start a new run with "
                "distill.run_name=<new name> (or delete the folder)"
            )
        return "same"
    existed = any(Path(run_dir).glob("stage*")) or (Path(run_dir) / "checkpoints").is_dir()
    if write:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + TMP_MARK)
        tmp.write_text(json.dumps(current, indent=2) + "\n")
        replace_durably(tmp, path)
    return "adopted" if existed else "new"


def launched_as_global_zero() -> bool:
    """Whether this process is (or will become) global rank 0, judged from the launcher's
    environment before Lightning sets up the processes: torchrun/Lightning (RANK, NODE_RANK,
    LOCAL_RANK) and SLURM (SLURM_PROCID)."""
    for var in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"):
        if os.environ.get(var, "0") not in ("", "0"):
            return False
    return True


# what a run folder holds that another machine does not need to resume it (README "What survives what")
NOT_CARRIED = ("checkpoints", "embeddings", "wandb")


def resume_state(cfg, run_dir: str | Path) -> list[Path]:
    """The files (relative to ``run_dir``) from which ``bsa distill`` resumes the run on another
    machine at its last finished stage, in a fraction of the folder's size: its records,
    fingerprint and config; of the stages finished in order (exported, and scored where ``cfg``
    scores them), every ``bsa_stage.json``, training log, and the last one's ``unet/`` (the next
    stage's teacher). Left out: the checkpoints (a stage in training starts again), the per-clip
    embeddings (results, not state), the earlier students' weights and the copies of the VAE and
    vocoder in every stage folder, and any stage after the first unfinished one. Such a folder is a
    run to resume, not a set of exports to sample."""
    from bsa.models.stages import STAGE_FILE, is_stage_folder
    from bsa.report.records import has_final_record

    run_dir = Path(run_dir)
    finished = []
    for stage in cfg.distill.plan.stages:
        folder = run_dir / stage.folder_name
        scored = not cfg.distill.scores(stage) or has_final_record(run_dir, stage.index, repair=False)
        if not (is_stage_folder(folder) and scored):
            break
        finished.append(stage.folder_name)
    unfinished = {stage.folder_name for stage in cfg.distill.plan.stages} - set(finished)

    def kept(rel: Path) -> bool:
        parts = rel.parts
        if TMP_MARK in str(rel) or parts[0] in NOT_CARRIED or parts[0] in unfinished:
            return False  # what killed writers left; not state; trained again
        if parts[0] == "logs" and len(parts) > 1 and parts[1] in unfinished:
            return False  # the curve of a stage trained again from its start
        if parts[0] in finished:  # metadata; weights only of the next stage's teacher
            return rel.name == STAGE_FILE or (parts[0] == finished[-1] and parts[1] == "unet")
        return True

    return [
        p.relative_to(run_dir)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and kept(p.relative_to(run_dir))
    ]
