"""Train the book's pretrained character GPT from the seed and write gen_utils/weights/shakespeare_gpt.pt.

    python scripts/pretrain_gpt.py [--out PATH]

Chapter 09's GPT(**CONFIG), trained with RECIPE (gen_utils/pretrained_gpt.py) on the training 90 % of
Tiny Shakespeare: about 10 minutes on two CPU cores. Prints the validation loss (VAL_NATS_PER_CHAR) and
the file's sha256 (WEIGHTS_SHA256); paste both into gen_utils/pretrained_gpt.py when the recipe changes.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import gen_utils as gu
from gen_utils.chapters.ch09_transformer_gpt import GPT, adamw, lm_loss, nats_per_char
from gen_utils.pretrained_gpt import CONFIG, RECIPE, WEIGHTS, char_tokenizer, sha256sum


def train_shakespeare_gpt(log_every: int = 500) -> tuple[torch.nn.Module, float]:
    """Train the model from the seed with RECIPE; returns it (CPU, eval mode) and its validation nats/char."""
    tok = char_tokenizer()
    text_train, text_val = gu.shakespeare_split()
    train_ids, val_ids = tok.encode(text_train), tok.encode(text_val)
    torch.manual_seed(RECIPE["seed"])
    model = GPT(**CONFIG)
    opt = adamw(model, RECIPE["lr"], RECIPE["weight_decay"])
    steps, warm = RECIPE["steps"], RECIPE["warmup"]
    decay = steps // 5                                  # chapter 09: warm-up, flat, linear decay
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min((i + 1) / warm, 1.0, (steps - i) / decay))
    g = torch.Generator().manual_seed(RECIPE["seed"] + 1)

    def windows():
        while True:
            yield gu.lm_windows(train_ids, CONFIG["block"], RECIPE["batch"], generator=g)

    gu.train(lambda b: lm_loss(model, b), windows(), optimizer=opt, model=model, steps=steps,
             clip_grad_norm=1.0, scheduler=sched, log_every=log_every, desc="pretrain")
    return model.eval(), nats_per_char(model, val_ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    model, val = train_shakespeare_gpt()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"validation {val:.4f} nats/char = {val / math.log(2):.4f} bits/char; {time.time() - t0:.0f} s; "
          f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), sha256 {sha256sum(args.out)}")


if __name__ == "__main__":
    main()
