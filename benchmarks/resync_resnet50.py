"""Time `resync --method lap` and `weight-matching` on an ImageNet-layout ResNet-50.

Not part of the test suite. Usage:

    python benchmarks/resync_resnet50.py [--width 1.0] [--noise 0.0] [--seed 0]

Prints seconds and Ψ for each method, measured side by side in one run on this machine.
The network is randomly initialised (no ImageNet weights offline); BatchNorm statistics are
randomised so they carry information, as in a trained network.
"""

from __future__ import annotations

import argparse
import time

import torch

from nnforensics.graph import find_groups
from nnforensics.models.factory import create_model
from nnforensics.permutation import permute
from nnforensics.perturbation import perturb
from nnforensics.resynchronization import resync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.0, help="Omega of Gaussian noise on every layer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--methods", default="lap,weight-matching")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaded = create_model("resnet50_imagenet", {"width": args.width}, seed=args.seed)
    model = loaded.model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 3, args.image_size, args.image_size)
    n_params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    groups = find_groups(model, x)
    t_groups = time.perf_counter() - t0
    print(f"resnet50 (ImageNet layout, width {args.width}): {n_params:,} parameters, "
          f"{len(groups)} groups, {groups.n_units:,} units; find_groups {t_groups:.2f} s (incl. validation)")
    t0 = time.perf_counter()
    perm = permute(model, seed=args.seed, example_inputs=x, group_set=groups)
    print(f"permute: {time.perf_counter() - t0:.2f} s, relative output change {perm.relative_output_diff:.1e}")
    suspect = perturb(perm.model, "noise", args.noise, seed=args.seed).model if args.noise else perm.model
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        result = resync(model, suspect, method=method, truth=perm.perms, group_set=groups)
        seconds = time.perf_counter() - t0
        print(f"{method:16s} {seconds:8.2f} s   psi {result.psi:6.2f}   collisions {result.collisions}")


if __name__ == "__main__":
    main()
