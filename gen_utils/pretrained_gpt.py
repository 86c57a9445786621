"""The book's pretrained character GPT: chapter 09's model, trained longer on Tiny Shakespeare.

Chapters 12-14 start from a pretrained language model, as practitioners do, instead of spending
their few minutes of CPU on pretraining. This is chapter 09's ``GPT`` (4 layers, 4 heads,
d_model 96, chapter 09's `cpu` size) with a context of 256 characters and a character vocabulary
that also covers Multi30k's German and English (``VOCAB``), trained for 6,000 steps on the
training 90 % of Tiny Shakespeare. The weights (fp32, ~2 MB) live in
``gen_utils/weights/shakespeare_gpt.pt``; their sha256 is checked on every load and they are read
with ``torch.load(weights_only=True)``.

Reproduce them from the seed (about 10 minutes on two CPU cores)::

    python scripts/pretrain_gpt.py

which trains, prints the validation loss, writes the file and prints its sha256 (paste it into
``WEIGHTS_SHA256`` when the recipe changes).

The model class is chapter 09's, which a library module may not import (chapter modules import the
package's face); so this module holds the data (vocabulary, architecture, weights) and chapter 12
exports the loader: ``from gen_utils.chapters.ch12_adapting_language_models import load_shakespeare_gpt``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import torch

from .text import CharTokenizer

WEIGHTS = Path(__file__).resolve().parent / "weights" / "shakespeare_gpt.pt"
WEIGHTS_SHA256 = "860d46ab1e5d97d32968d65a9f78387dc03e0ff383b4123d7762a47507367e67"
# the characters of Tiny Shakespeare and of Multi30k's German and English (all splits), plus the
# '<' and '>' of the task markers "<de>" and "<en>" (chapter 12); sorted, as CharTokenizer sorts
VOCAB = ("\t\n !\"#$%&'(),-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz"
         "\xa0ÄÖÜßàäèéñöü–‘’“”„")
# the architecture (chapter 09's GPT(**CONFIG)) and the training recipe (scripts/pretrain_gpt.py)
CONFIG = dict(vocab=len(VOCAB), block=256, d_model=96, n_layer=4, n_head=4)
RECIPE = dict(steps=6_000, batch=8, lr=3e-3, warmup=100, weight_decay=0.1, seed=0)
# validation loss of the shipped weights on the whole validation tenth, as scripts/pretrain_gpt.py prints it
VAL_NATS_PER_CHAR = 1.5053


def char_tokenizer() -> CharTokenizer:
    """The pretrained model's tokenizer: characters of ``VOCAB`` <-> ids 0 ... len(VOCAB) - 1."""
    tok = CharTokenizer(VOCAB)
    if tok.chars != list(VOCAB):
        raise AssertionError("VOCAB must be sorted and free of repeats")
    return tok


def sha256sum(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@cache
def pretrained_state_dict() -> dict[str, torch.Tensor]:
    """The pretrained weights (CPU, fp32), for chapter 09's ``GPT(**CONFIG)``: ``model.load_state_dict(...)``.

    Verifies the file's sha256 once per process (ValueError on mismatch). The dict is shared between
    calls: load it into a model (which copies it), do not modify it.
    """
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing: reinstall gen_utils, or recreate it with "
                                "`python scripts/pretrain_gpt.py`")
    got = sha256sum(WEIGHTS)
    if got != WEIGHTS_SHA256:
        raise ValueError(f"pretrained GPT weights have sha256 {got}, expected {WEIGHTS_SHA256}: the file is "
                         "damaged or from another recipe; reinstall gen_utils or rerun "
                         "`python scripts/pretrain_gpt.py`")
    return torch.load(WEIGHTS, map_location="cpu", weights_only=True)
