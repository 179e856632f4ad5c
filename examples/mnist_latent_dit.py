"""Lab 08's pipeline on MNIST: a convolutional autoencoder, then a diffusion transformer in its latent space.

The course's optional MNIST path, for students with a GPU (CI never runs it on MNIST). Lab 08 does
the same on the 8×8 digits with a dense autoencoder; on 28×28 images the convolutional coder pays
off, and its latent is a small image, ``(4, 7, 7)``, whose 49 positions become the DiT's tokens::

    python examples/mnist_latent_dit.py --data data/mnist --download   # online: fetch and verify once
    python examples/mnist_latent_dit.py --data data/mnist              # offline afterwards

Three stages, each timed:

1. the autoencoder, ``(1, 28, 28) → (4, 7, 7)``, trained on the reconstruction loss; its held-out
   reconstruction error is the floor under every latent sample;
2. the DiT on normalised latents (``patch_size=1``: one token per latent pixel), trained with
   Lab 07's CFG loss (label dropping, ``eta = 0.1``);
3. a judge: a small convolutional classifier trained on MNIST's training images, which reads the
   generated digits; the script prints its test accuracy beside the generated digits' accuracy on
   the labels asked for, and saves a grid of samples (one row per digit) as a PNG.

README.md (section "MNIST, with a GPU") gives the measured run: about 47 minutes on one CPU thread,
hence a GPU. ``--ae-steps``, ``--dit-steps`` and ``--judge-steps`` shorten it (tests/test_mnist.py runs it
that way on a few stand-in images, to check that every stage runs and the grid is written).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script: write the figure to a file, never open a window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import labs_lib as ll  # noqa: E402
from labs_lib import plotting  # noqa: E402
from labs_lib.mnist import load_mnist  # noqa: E402


def classifier() -> nn.Module:
    """A small CNN for 28×28 digits: two convolution-pooling stages and a linear read-out (10 logits)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def train_judge(train: ll.LabelledImages, n_steps: int, device: torch.device, seed: int) -> nn.Module:
    """The classifier trained by Adam on batches of 256 training digits."""
    torch.manual_seed(seed)
    net = classifier().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(n_steps):
        x, y = train.sample_labelled(256)
        loss = nn.functional.cross_entropy(net(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """The fraction of ``images`` ``(n, 1, 28, 28)`` that ``net`` reads as their ``labels`` ``(n,)``."""
    device = next(net.parameters()).device
    hits = sum(int((net(images[i:i + batch_size].to(device)).argmax(1).cpu() == labels[i:i + batch_size]).sum())
               for i in range(0, len(images), batch_size))
    return hits / len(images)


def save_grid(images: torch.Tensor, per_digit: int, path: Path) -> None:
    """Samples ``(10·per_digit, 1, 28, 28)``, digit by digit, as a PNG with one row per digit."""
    fig, ax = plt.subplots(figsize=(per_digit * 0.6, 6.2))
    plotting.plot_image_grid(images, per_digit, ax=ax, row_labels=[str(d) for d in range(10)])
    fig.tight_layout(pad=0.1)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder with MNIST's four IDX files")
    parser.add_argument("--download", action="store_true", help="fetch and verify missing files (online)")
    parser.add_argument("--ae-steps", type=int, default=2000)
    parser.add_argument("--dit-steps", type=int, default=4000)
    parser.add_argument("--judge-steps", type=int, default=1500)
    parser.add_argument("--guidance", type=float, default=2.0, help="the guidance scale w of the samples")
    parser.add_argument("--per-digit", type=int, default=100, help="samples per digit, judged (12 drawn)")
    parser.add_argument("--out", type=Path, default=Path("mnist_latent_dit.png"))
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = ll.get_device(args.device)
    train = load_mnist(args.data, "train", download=args.download)
    test = load_mnist(args.data, "test")
    print(f"MNIST: {len(train):,} training and {len(test):,} test images; device {device}")
    figures: dict[str, float] = {}

    t0 = time.perf_counter()
    ae = ll.Autoencoder((1, 28, 28), latent_channels=4, channels=(32, 64, 64)).to(device)
    ll.AutoencoderTrainer(ae, train).train(args.ae_steps, batch_size=128, lr=2e-3, lr_schedule="cosine",
                                           seed=args.seed, device=device, description="autoencoder")
    figures["autoencoder s"] = time.perf_counter() - t0
    figures["reconstruction mse"] = ll.reconstruction_mse(ae, test.images)
    print(f"autoencoder: latent {ae.latent_shape}, {ae.n_parameters():,} parameters, "
          f"{figures['autoencoder s']:.0f} s; held-out reconstruction error "
          f"{figures['reconstruction mse']:.4f} per pixel")

    t0 = time.perf_counter()
    latents = ll.LatentImages(ae, train, device=device)
    ll.seed_everything(args.seed)
    dit = ll.DiT(num_classes=10, image_channels=ae.latent_shape[0], patch_size=1, width=96, depth=4, heads=4)
    ll.CFGTrainer(dit, ll.AffinePath(ll.CondOTScheduler()), latents, eta=0.1).train(
        args.dit_steps, batch_size=128, lr=1e-3, lr_schedule="cosine", seed=args.seed, device=device,
        description="latent DiT")
    figures["dit s"] = time.perf_counter() - t0
    print(f"latent DiT: {dit.n_parameters():,} parameters, {figures['dit s']:.0f} s")

    t0 = time.perf_counter()
    judge = train_judge(train, args.judge_steps, device, args.seed)
    figures["judge s"] = time.perf_counter() - t0
    figures["judge accuracy"] = accuracy(judge, test.images, test.labels)
    print(f"judge: {figures['judge s']:.0f} s; reads {100 * figures['judge accuracy']:.1f}% of the test digits right")

    labels = torch.arange(10).repeat_interleave(args.per_digit)
    t0 = time.perf_counter()
    samples = ll.generate_latent_guided(dit, ae, labels, args.guidance, n_steps=25, method="heun", seed=args.seed)
    figures["sampling s"] = time.perf_counter() - t0
    figures["sample accuracy"] = accuracy(judge, samples, labels)
    print(f"{len(labels):,} samples at w = {args.guidance:g} (25 Heun steps) in {figures['sampling s']:.1f} s: "
          f"{100 * figures['sample accuracy']:.1f}% read as the digit asked for")
    shown = min(12, args.per_digit)
    pick = torch.cat([torch.arange(k * args.per_digit, k * args.per_digit + shown) for k in range(10)])
    save_grid(samples[pick], shown, args.out)
    print(f"samples: {args.out}")
    return figures


if __name__ == "__main__":
    main()
