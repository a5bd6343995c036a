"""Input image sizes: ``image_size`` is an int (square images) or an ``(H, W)`` pair.

Every built-in constructor takes ``image_size``; those whose layer sizes depend on it
(LeNet, MLP, ViT) derive them from both sides, the others check that their
downsampling leaves at least one pixel. An impossible size is a ``ValueError`` raised
while building (the registry turns it into a :class:`~nnforensics.errors.ConfigError`),
never an error at the first forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

ImageSize = int | Sequence[int]


def image_hw(image_size: ImageSize) -> tuple[int, int]:
    """``(H, W)`` from an int or a pair of positive integers."""
    pair = [image_size, image_size] if not isinstance(image_size, (list, tuple)) else list(image_size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise ValueError(f"image_size must be a positive integer or a pair [height, width], got {image_size!r}")
    return pair[0], pair[1]


def require_side(what: str, image_size: ImageSize, minimum: int) -> tuple[int, int]:
    """``(H, W)``, or ``ValueError`` saying the smallest size ``what`` can run on."""
    h, w = image_hw(image_size)
    if min(h, w) < minimum:
        raise ValueError(f"{what} needs images of at least {minimum}x{minimum} pixels, got {h}x{w}")
    return h, w


def image_size_for(input_shape: Sequence[int]) -> int | list[int]:
    """The ``image_size`` argument for one input of shape ``(C, H, W)``: an int when square."""
    h, w = int(input_shape[-2]), int(input_shape[-1])
    return h if h == w else [h, w]
