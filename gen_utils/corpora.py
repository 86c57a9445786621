"""Text corpora: Tiny Shakespeare (character level) and Multi30k (sentence pairs)."""

from __future__ import annotations

import gzip
from functools import cache

from .data import dataset_file

MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
MULTI30K_LANGS = ("en", "de", "fr")


@cache
def load_shakespeare() -> str:
    """The whole Tiny Shakespeare text (1 115 394 characters, 65 distinct)."""
    return dataset_file("tinyshakespeare", "input.txt").read_text(encoding="utf-8")


def shakespeare_split(text: str | None = None, train_fraction: float = 0.9) -> tuple[str, str]:
    """nanoGPT's split of Tiny Shakespeare: the first 90 % is train, the last 10 % validation."""
    text = load_shakespeare() if text is None else text
    n = int(len(text) * train_fraction)
    return text[:n], text[n:]


@cache
def _multi30k_lines(split: str, lang: str) -> tuple[str, ...]:
    path = dataset_file("multi30k", f"{MULTI30K_SPLITS[split]}.{lang}.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f)


def load_multi30k(split: str = "train", src: str = "de", tgt: str = "en") -> list[tuple[str, str]]:
    """Multi30k task-1 sentence pairs ``(source, target)`` of one split.

    split: "train" (29 000), "val" (1 014) or "test" (test_2016_flickr, 1 000).
    src, tgt: two different languages of en / de / fr. Sentences are raw (untokenised) text.
    """
    if split not in MULTI30K_SPLITS:
        raise ValueError(f"Multi30k split must be one of {sorted(MULTI30K_SPLITS)}, got {split!r}")
    for lang in (src, tgt):
        if lang not in MULTI30K_LANGS:
            raise ValueError(f"Multi30k language must be one of {MULTI30K_LANGS}, got {lang!r}")
    if src == tgt:
        raise ValueError(f"source and target language are both {src!r}")
    a, b = _multi30k_lines(split, src), _multi30k_lines(split, tgt)
    if len(a) != len(b):
        raise ValueError(f"Multi30k {split}: {len(a)} {src} lines but {len(b)} {tgt} lines")
    return list(zip(a, b, strict=True))
