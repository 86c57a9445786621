"""A small MNIST CNN shipped with its weights: the feature extractor behind the book's FID.

Inception weights cannot be downloaded everywhere the book runs, so the GAN chapters measure
FID on the penultimate (128-d) features of this network and label accuracy with its logits.
The weights (fp32, ~0.5 MB) live in ``gen_utils/weights/mnist_cnn.pt``; their sha256 is
checked on every load and they are read with ``torch.load(weights_only=True)``.

Reproduce them from the seed (a few minutes on two CPU cores)::

    python -m gen_utils.mnist_classifier --train

which trains, prints the test accuracy, writes the file and prints its sha256 (paste it into
``WEIGHTS_SHA256`` when the recipe changes).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from functools import cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS = Path(__file__).resolve().parent / "weights" / "mnist_cnn.pt"
WEIGHTS_SHA256 = "68d31e22efa476542732dc4dff07f17efce86362a1726106f26278255c923aea"
# accuracy on the 10 000 MNIST test images, as printed by `--train` (asserted in tests/test_fid.py)
TEST_ACCURACY = 0.9932
FEATURE_DIM = 128
# MNIST pixel mean and standard deviation (of the training set, in [0, 1] units)
_MEAN, _STD = 0.1307, 0.3081


class MnistCNN(nn.Module):
    """Three conv blocks and two linear layers (~0.1 M parameters).

    Input: images (B, 1, 28, 28) in [0, 1]. ``features`` returns the (B, 128) penultimate
    activations (after ReLU) used for FID; ``forward`` returns (B, 10) logits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 14
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 7
            nn.Conv2d(32, 32, 3), nn.BatchNorm2d(32), nn.ReLU(),                              # 5
        )
        self.fc = nn.Linear(32 * 5 * 5, FEATURE_DIM)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] → (B, 128) penultimate features."""
        h = self.conv((x - _MEAN) / _STD)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] → (B, 10) logits."""
        return self.head(self.dropout(self.features(x)))


def sha256sum(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@cache
def _load_cpu() -> MnistCNN:
    if not WEIGHTS.is_file():
        raise FileNotFoundError(
            f"the MNIST classifier weights are missing ({WEIGHTS.name} in gen_utils/weights); "
            "reinstall gen_utils or recreate them with `python -m gen_utils.mnist_classifier --train`"
        )
    got = sha256sum(WEIGHTS)
    if got != WEIGHTS_SHA256:
        raise ValueError(
            f"MNIST classifier weights have sha256 {got}, expected {WEIGHTS_SHA256}: the file is "
            "corrupt or from another recipe; reinstall gen_utils or retrain with "
            "`python -m gen_utils.mnist_classifier --train` and update WEIGHTS_SHA256"
        )
    net = MnistCNN()
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().requires_grad_(False)


def load_mnist_classifier(device: torch.device | str | None = None) -> MnistCNN:
    """The shipped classifier in eval mode, no gradients, on ``device`` (default CPU).

    Verifies the weights' sha256 once per process (ValueError on mismatch).
    """
    net = _load_cpu()
    return net if device is None else net.to(device)


@torch.no_grad()
def check_pixel_range(images: torch.Tensor) -> None:
    """Refuse what the classifier would score wrongly without a word.

    Accepted: uint8 (0..255), bool, or float in [0, 1]. Raises ValueError for no images, NaN or
    infinite pixels, and float pixels outside [0, 1] (naming the range seen and the fix); TypeError
    for other integer types (int64 0..255 would be read as 0..255 times too bright).
    """
    if len(images) == 0:
        raise ValueError("no images to score (N = 0)")
    if images.dtype in (torch.uint8, torch.bool):
        return
    if not images.is_floating_point():
        raise TypeError(f"images of dtype {images.dtype}: pass uint8 in 0..255 (x.to(torch.uint8)) or "
                        "float in [0, 1] (x.float() / 255)")
    if not torch.isfinite(images).all():
        raise ValueError(f"{int((~torch.isfinite(images)).sum())} pixels are NaN or infinite")
    lo, hi = images.min().item(), images.max().item()
    if lo < 0.0 or hi > 1.0:
        hint = "(x + 1) / 2, or gu.from_pm1(x)" if lo >= -1.0 and hi <= 1.0 else "x / 255, or uint8"
        raise ValueError(f"float images must lie in [0, 1]; these span [{lo:.3g}, {hi:.3g}]. "
                         f"Rescale first: {hint}")


def classifier_outputs(images: torch.Tensor, batch_size: int = 1000,
                       device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, 128) and logits (N, 10) of images (N, 1, 28, 28) or (N, 28, 28).

    images: float in [0, 1] (uint8 0..255 is converted); computed in batches on ``device``
    (default: the images' device); returned as float32 on the CPU.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected MNIST images (N, 1, 28, 28) or (N, 28, 28), got {tuple(images.shape)}")
    check_pixel_range(images)
    device = torch.device(device) if device is not None else images.device
    net = load_mnist_classifier(device)
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        f = net.features(x)
        feats.append(f.float().cpu())
        logits.append(net.head(f).float().cpu())
    return torch.cat(feats), torch.cat(logits)


def train_classifier(seed: int = 0, epochs: int = 3, batch_size: int = 128,
                     lr: float = 3e-3) -> tuple[MnistCNN, float]:
    """Train ``MnistCNN`` from the seed on the 60 000 training images; returns (net, test accuracy).

    Adam with a one-cycle schedule and ±2-pixel random shifts; deterministic on the CPU.
    """
    from .mnist import Batches, load_mnist, to_unit
    from .runtime import seed_everything

    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_mnist("train")
    x = to_unit(x)
    net = MnistCNN()
    batches = Batches(x, y, batch_size=batch_size, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(batches))
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        for xb, yb in batches:
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()  # one shift per batch
            xb = torch.roll(xb, shifts=(dx, dy), dims=(2, 3))
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = test_accuracy(net)
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, test accuracy {acc:.4%}, "
              f"{time.perf_counter() - start:.0f}s")
    return net.eval(), acc


@torch.no_grad()
def test_accuracy(net: MnistCNN | None = None) -> float:
    """Accuracy of ``net`` (default: the shipped classifier) on the 10 000 MNIST test images."""
    from .mnist import load_mnist, to_unit

    x, y = load_mnist("test")
    if net is None:
        _, logits = classifier_outputs(to_unit(x))
    else:
        was = net.training
        net.eval()
        logits = torch.cat([net(to_unit(x[i : i + 1000])) for i in range(0, len(x), 1000)])
        net.train(was)
    return (logits.argmax(1) == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description="Train (or check) the book's MNIST classifier.")
    ap.add_argument("--train", action="store_true", help="train from the seed and write the weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    if args.train:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        net, acc = train_classifier(seed=args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, args.out)
        print(f"test accuracy {acc:.4%}; wrote {args.out.name} "
              f"({args.out.stat().st_size / 1e6:.2f} MB), sha256 {sha256sum(args.out)}")
    else:
        print(f"shipped classifier: test accuracy {test_accuracy():.4%}")


if __name__ == "__main__":
    main()
