"""The latent cache's manifest: the facts needed to interpret the cached latents, and the check
that they match the models a run is configured with."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# a model's name is where it was configured from (a path, ``embedded:vae``): not its content
IGNORED_MODEL_FIELDS = ("name",)
CACHE_FORMAT = 1


class CacheMismatchError(ValueError):
    """The cache was built with other models or parameters than the config asks for."""


@dataclass
class CacheIdentity:
    """What determines the cache's content: compare before using it."""

    mel: dict[str, Any]  # MelParams.as_dict()
    clip_seconds: float
    vae: dict[str, Any]  # {"name", "sha256", "scaling_factor", ...}
    text_encoder: dict[str, Any]  # {"name", "sha256", "dim"}
    latent_shape: list[int]  # [C, T', F'] per clip
    storage_dtype: str = "float16"
    format: int = CACHE_FORMAT

    def content(self) -> dict[str, Any]:
        """The identity without the models' names (where they were configured from): two caches
        built from the same weights, configs and parameters have the same content."""
        raw = asdict(self)
        for key in ("vae", "text_encoder"):
            raw[key] = {k: v for k, v in raw[key].items() if k not in IGNORED_MODEL_FIELDS}
        return raw

    def differences(self, other: CacheIdentity) -> list[str]:
        """Human-readable differences of :meth:`content`, ``[]`` when they match."""
        out = []
        mine, theirs = self.content(), other.content()
        for key in mine:
            if mine[key] != theirs[key]:
                if isinstance(mine[key], dict) and isinstance(theirs[key], dict):
                    for sub in sorted(set(mine[key]) | set(theirs[key])):
                        if mine[key].get(sub) != theirs[key].get(sub):
                            out.append(
                                f"{key}.{sub}: cache has {mine[key].get(sub)!r}, config gives {theirs[key].get(sub)!r}"
                            )
                else:
                    out.append(f"{key}: cache has {mine[key]!r}, config gives {theirs[key]!r}")
        return out


@dataclass
class SplitEntry:
    count: int
    shards: list[str]
    skipped: int


@dataclass
class CacheManifest:
    identity: CacheIdentity
    splits: dict[str, SplitEntry]
    dataset: dict[str, Any] = field(default_factory=dict)  # e.g. the embedded set's DATASET.json
    null_text_embedding: str = "null_text_embedding.pt"

    def write(self, cache_dir: Path) -> None:
        path = Path(cache_dir) / MANIFEST
        from bsa.durable import replace_durably, temporary_path

        tmp = temporary_path(path)
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        replace_durably(tmp, path)

    @classmethod
    def read(cls, cache_dir: str | Path) -> CacheManifest:
        path = Path(cache_dir) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no latent cache manifest (run `make cache`, or finish an interrupted one)"
            )
        raw = json.loads(path.read_text())
        return cls(
            identity=CacheIdentity(**raw["identity"]),
            splits={k: SplitEntry(**v) for k, v in raw["splits"].items()},
            dataset=raw.get("dataset", {}),
            null_text_embedding=raw["null_text_embedding"],
        )

    def check(self, expected: CacheIdentity, cache_dir: str | Path = "") -> None:
        """Raise :class:`CacheMismatchError` listing every difference from ``expected``."""
        diffs = self.identity.differences(expected)
        if diffs:
            raise CacheMismatchError(
                f"latent cache {cache_dir} does not match the configured models:\n  "
                + "\n  ".join(diffs)
                + "\nrebuild it with `make cache` (or point data.cache_dir elsewhere)"
            )
