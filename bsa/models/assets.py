"""The embedded models shipped in ``bsa/assets/<name>/`` (diffusers ``save_pretrained`` layout)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PREFIX = "embedded:"


def resolve_model_path(spec: str) -> Path:
    """``"embedded:vae"`` → the shipped folder ``bsa/assets/vae``; any other string is a path.
    A shipped model that is missing says which make target rebuilds it."""
    if spec.startswith(PREFIX):
        name = spec[len(PREFIX) :]
        path = ASSETS / name
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path}: the embedded model {name!r} is not there; `make {name}` trains it"
            )
        return path
    return Path(spec)
