"""The book's pretrained character GPT: chapter 09's model, trained longer on Tiny Shakespeare.

Chapters 12-14 start from a pretrained language model, as practitioners do, instead of spending
their few minutes of CPU on pretraining. This is chapter 09's ``GPT`` (4 layers, 4 heads,
d_model 96, chapter 09's `cpu` size) with a context of 256 characters and a character vocabulary
that also covers Multi30k's German and English (``VOCAB``), trained for 6,000 steps on the
training 90 % of Tiny Shakespeare. The weights (fp32, ~2 MB) live in
``gen_utils/weights/shakespeare_gpt.pt``; their sha256 is checked on every load and they are read
with ``torch.load(weights_only=True)``.

Reproduce them from the seed (about 10 minutes on two CPU cores)::

    python -m gen_utils.pretrained_gpt --train

which trains, prints the validation loss, writes the file and prints its sha256 (paste it into
``WEIGHTS_SHA256`` when the recipe changes).

Not imported by ``gen_utils/__init__`` (it builds on chapter 09's generated module, which imports
the package's face): ``from gen_utils.pretrained_gpt import load_shakespeare_gpt``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from functools import cache
from pathlib import Path

import torch

from .corpora import shakespeare_split
from .text import CharTokenizer
from .train import train

WEIGHTS = Path(__file__).resolve().parent / "weights" / "shakespeare_gpt.pt"
WEIGHTS_SHA256 = "860d46ab1e5d97d32968d65a9f78387dc03e0ff383b4123d7762a47507367e67"
# the characters of Tiny Shakespeare and of Multi30k's German and English (all splits), plus the
# '<' and '>' of the task markers "<de>" and "<en>" (chapter 12); sorted, as CharTokenizer sorts
VOCAB = ("\t\n !\"#$%&'(),-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz"
         "\xa0ÄÖÜßàäèéñöü–‘’“”„")
# the architecture (GPT's arguments) and the training recipe
CONFIG = dict(vocab=len(VOCAB), block=256, d_model=96, n_layer=4, n_head=4)
RECIPE = dict(steps=6_000, batch=8, lr=3e-3, warmup=100, weight_decay=0.1, seed=0)
# validation loss of the shipped weights on the whole validation tenth, as printed by --train
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


def new_gpt() -> torch.nn.Module:
    """An untrained GPT of the pretrained model's architecture (chapter 09's class, seeded init)."""
    from .chapters.ch09_transformer_gpt import GPT

    return GPT(CONFIG["vocab"], CONFIG["block"], CONFIG["d_model"], CONFIG["n_layer"], CONFIG["n_head"])


@cache
def _state_dict() -> dict[str, torch.Tensor]:
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing: reinstall gen_utils, or recreate it with "
                                "`python -m gen_utils.pretrained_gpt --train`")
    got = sha256sum(WEIGHTS)
    if got != WEIGHTS_SHA256:
        raise ValueError(f"pretrained GPT weights have sha256 {got}, expected {WEIGHTS_SHA256}: the file is "
                         "damaged or from another recipe; reinstall gen_utils or rerun "
                         "`python -m gen_utils.pretrained_gpt --train`")
    return torch.load(WEIGHTS, map_location="cpu", weights_only=True)


def load_shakespeare_gpt(device: torch.device | str | None = None) -> torch.nn.Module:
    """A fresh copy of the pretrained GPT, in train mode, on ``device`` (default CPU).

    forward(idx (B, T) ids of ``char_tokenizer()``, T <= 256) -> logits (B, T, len(VOCAB)).
    Each call returns new parameters: fine-tuning one copy leaves the others untouched.
    Verifies the weights' sha256 once per process (ValueError on mismatch).
    """
    model = new_gpt()
    model.load_state_dict(_state_dict())
    return model.to(device or "cpu")


def train_shakespeare_gpt(log_every: int = 500) -> tuple[torch.nn.Module, float]:
    """Train the model from the seed with ``RECIPE``; returns it (CPU) and its validation nats/char."""
    from .chapters.ch09_transformer_gpt import adamw, lm_loss, nats_per_char
    from .text import lm_windows

    tok = char_tokenizer()
    text_train, text_val = shakespeare_split()
    train_ids, val_ids = tok.encode(text_train), tok.encode(text_val)
    torch.manual_seed(RECIPE["seed"])
    model = new_gpt()
    opt = adamw(model, RECIPE["lr"], RECIPE["weight_decay"])
    steps, warm = RECIPE["steps"], RECIPE["warmup"]
    decay = steps // 5                                  # chapter 09: warm-up, flat, linear decay
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min((i + 1) / warm, 1.0, (steps - i) / decay))
    g = torch.Generator().manual_seed(RECIPE["seed"] + 1)

    def windows():
        while True:
            yield lm_windows(train_ids, CONFIG["block"], RECIPE["batch"], generator=g)

    train(lambda b: lm_loss(model, b), windows(), optimizer=opt, model=model, steps=steps,
          clip_grad_norm=1.0, scheduler=sched, log_every=log_every, desc="pretrain")
    return model.eval(), nats_per_char(model, val_ids)


def main() -> None:
    ap = argparse.ArgumentParser(description="Train (or check) the book's pretrained character GPT.")
    ap.add_argument("--train", action="store_true", help="train from the seed and write the weights")
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    if not args.train:
        print(f"{WEIGHTS}: sha256 {sha256sum(WEIGHTS)} (expected {WEIGHTS_SHA256})")
        return
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    model, val = train_shakespeare_gpt()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"validation {val:.4f} nats/char = {val / math.log(2):.4f} bits/char; {time.time() - t0:.0f} s; "
          f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), sha256 {sha256sum(args.out)}")


if __name__ == "__main__":
    main()
