"""A model's identity for manifests and checkpoints: a sha256 over its config and weights."""

from __future__ import annotations

import hashlib
import json

import torch


def state_dict_sha256(module: torch.nn.Module, config: dict | None = None) -> str:
    """sha256 over the (sorted) parameter/buffer names, shapes, dtypes and bytes, and ``config``.

    Config keys starting with ``_`` are left out: diffusers adds ``_name_or_path`` (where the model
    was loaded from) and ``_diffusers_version`` on loading, so the same weights and config would
    otherwise hash differently after a re-clone, a move, or on a node that mounts the disk elsewhere."""
    h = hashlib.sha256()
    if config is not None:
        content = {k: v for k, v in dict(config).items() if not str(k).startswith("_")}
        h.update(json.dumps(content, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_loading_info(folder, info: dict, what: str) -> None:
    """diffusers' ``from_pretrained`` initialises missing weights at random with only a warning;
    bsa treats any missing, unexpected or mismatched weight as an error naming the folder."""
    problems = {
        k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v
    }
    if problems:
        detail = "; ".join(
            f"{k.replace('_', ' ')}: {len(v)} (e.g. {list(v)[0]})" for k, v in problems.items()
        )
        raise ValueError(f"{folder}: the weights do not match a {what} of this config — {detail}")


def load_strict(model_class, folder, what: str):
    """``model_class.from_pretrained(folder)`` with local files only, refusing any weight mismatch."""
    from pathlib import Path

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no {what} here (expected a diffusers {model_class.__name__} folder with config.json)"
        )
    model, info = model_class.from_pretrained(
        folder, local_files_only=True, low_cpu_mem_usage=False, output_loading_info=True
    )
    check_loading_info(folder, info, model_class.__name__)
    return model
