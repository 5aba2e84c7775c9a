"""Pack the per-clip evaluation embeddings a comparison's runs kept (``eval.keep_embeddings``:
``<run>/embeddings/*.safetensors``) so that they come home beside the records: the paired FAD
differences of ``bsa study`` are computed from them, and on 2026-11-29 a session's device time ended
while a finished comparison wrote its own study — seed 3's embeddings, and its paired FAD
differences, went with the machine. One tar (files identical byte for byte — the teacher's
reference, which every member of a population records — stored once, as hard links), written in
pieces of at most ``--piece-mib`` MiB (the device tool brings back files of 16 MiB at most):
``<out>/embeddings.tar.part-aa``, ``-ab``, … At home, into the comparison's results folder:
    cat <files_at>/embeddings.tar.part-* | tar x -C <folder>
    python3 experiments/gpu/pack_embeddings.py <out> <comparison folder> [--piece-mib 15] [--max-mib 40]
Above ``--max-mib`` in all nothing is written and a line says so (the call's other files come first).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import string
import tarfile
from itertools import product
from pathlib import Path

EMBEDDINGS = "embeddings"


def piece_names(count: int) -> list[str]:
    """split(1)'s suffixes: aa, ab, …, az, ba, … (``cat part-*`` puts them back in order)."""
    names = ["".join(p) for p in product(string.ascii_lowercase, repeat=2)]
    if count > len(names):
        raise ValueError(f"{count} pieces: at most {len(names)}")
    return names[:count]


def embeddings_tar(comparison: Path) -> tuple[bytes, int, int]:
    """(the tar's bytes, files, files stored as links) of every ``<run>/embeddings/*.safetensors``
    under ``comparison``, paths relative to it; a file identical to one already stored is a hard link."""
    buffer, first, links = io.BytesIO(), {}, 0
    files = sorted(comparison.glob(f"*/{EMBEDDINGS}/*.safetensors"))
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:  # each read once: hashed, then stored from the bytes read
            name, data = str(path.relative_to(comparison)), path.read_bytes()
            info, digest = tar.gettarinfo(str(path), arcname=name), hashlib.sha256(data).hexdigest()
            if digest in first:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first[digest], 0
                tar.addfile(info)
                links += 1
            else:
                first[digest] = name
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), len(files), links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("comparison")
    parser.add_argument("--piece-mib", type=float, default=15)
    parser.add_argument("--max-mib", type=float, default=40)
    args = parser.parse_args(argv)
    data, files, links = embeddings_tar(Path(args.comparison))
    mib = len(data) / 2**20
    if not files:
        print(f"{args.comparison}: no kept embeddings, nothing packed")
        return 0
    if mib > args.max_mib:
        print(
            f"{args.comparison}: embeddings {mib:.1f} MiB > {args.max_mib} MiB: not packed (fewer runs per call)"
        )
        return 0
    piece = int(args.piece_mib * 2**20)
    chunks = [data[i : i + piece] for i in range(0, len(data), piece)]
    for suffix, chunk in zip(piece_names(len(chunks)), chunks, strict=True):
        target = Path(args.out) / f"embeddings.tar.part-{suffix}"
        target.with_name(target.name + ".tmp").write_bytes(chunk)
        target.with_name(target.name + ".tmp").rename(target)
    print(
        f"{args.comparison}: {files} embeddings ({links} stored once before) {mib:.1f} MiB → {len(chunks)} piece(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
