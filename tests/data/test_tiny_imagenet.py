"""Tiny-ImageNet-200 trees in the official layout, written with Pillow as JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nnforensics.data import list_datasets, load_dataset
from nnforensics.errors import ConfigError, CorruptFileError, DataError

WNIDS = ("n01443537", "n01629819", "n01641577")
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra",
         "n01641577": "bullfrog, Rana catesbeiana", "n99999999": "not a class here"}
#: val image k -> wnid index (two per class, deliberately not in class order)
VAL_LABELS = (2, 0, 1, 0, 2, 1)
N_TRAIN = 10  # per class: 1 of each class held out as val (10 %)


def _jpeg(path: Path, arr: np.ndarray) -> np.ndarray:
    """Write ``arr`` (H, W) or (H, W, 3) as JPEG; returns what Pillow decodes from it, as (3, H, W)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=90)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


def write_tree(root: Path, gray: tuple[int, int] = (1, 3), words: bool = True) -> dict[str, list[np.ndarray]]:
    """``root/tiny-imagenet-200`` in the official layout; returns the decoded images of train and val."""
    rng = np.random.default_rng(0)
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    if words:
        (base / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in WORDS.items()))
    out: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for c, wnid in enumerate(WNIDS):
        (base / "train" / wnid).mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
        for k in range(N_TRAIN):
            shape = (64, 64) if (c, k) == gray else (64, 64, 3)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            out["train"].append(_jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", arr))
    lines = []
    for k, label in enumerate(VAL_LABELS):
        arr = np.full((64, 64, 3), 40 * k, np.uint8)
        out["val"].append(_jpeg(base / "val" / "images" / f"val_{k}.JPEG", arr))
        lines.append(f"val_{k}.JPEG\t{WNIDS[label]}\t0\t32\t44\t62\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    _jpeg(base / "test" / "images" / "test_0.JPEG", np.zeros((64, 64, 3), np.uint8))  # unlabelled: never read
    return out


@pytest.fixture
def tree(tmp_path):
    return tmp_path, write_tree(tmp_path)


def test_registered_with_its_layout():
    entry = {e.name: e for e in list_datasets()}["tiny-imagenet"]
    assert entry.needs_path and "wnids.txt" in entry.default_source()
    assert "official val" in entry.description
    with pytest.raises(ConfigError, match="needs a path"):
        load_dataset("tiny-imagenet", "train")


def test_splits_shapes_labels_and_pixels(tree):
    root, images = tree
    spec = f"tiny-imagenet:{root / 'tiny-imagenet-200'}"
    tr, va, te = (load_dataset(spec, s) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (27, 3, 6)
    assert tr.x.dtype == torch.uint8 and tr.x.shape[1:] == (3, 64, 64)
    # labels follow wnids.txt order; one image per class held out as val
    assert sorted(va.y.tolist()) == [0, 1, 2] and tr.y.bincount().tolist() == [9, 9, 9]
    # test = the official val set, in annotation order, labels from val_annotations.txt
    assert te.y.tolist() == list(VAL_LABELS)
    np.testing.assert_array_equal(te.x.numpy(), np.stack(images["val"]))
    # train + val are exactly the training JPEGs as Pillow decodes them (grayscale -> RGB)
    both = torch.cat([tr.x, va.x]).flatten(1).numpy()
    expected = np.stack(images["train"]).reshape(len(images["train"]), -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, expected))
    info = tr.info
    assert info.name == "tiny-imagenet" and info.num_classes == 3 and info.input_shape == (3, 64, 64)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.augment == "crop+flip" and info.class_names == ("goldfish", "European fire salamander",
                                                                "bullfrog")
    assert len(load_dataset(spec, "all")) == 36


def test_grayscale_jpeg_becomes_rgb_and_parent_folder_works(tree):
    root, images = tree
    tr = load_dataset(f"tiny-imagenet:{root}", "trainval")  # the folder containing tiny-imagenet-200/
    from PIL import Image

    with Image.open(root / "tiny-imagenet-200" / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_3.JPEG") as img:
        assert img.mode == "L"  # written as a grayscale JPEG (write_tree's gray=(1, 3))
    gray = images["train"][N_TRAIN + 3]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()
    assert any(torch.equal(x, torch.from_numpy(gray.copy())) for x in tr.x)


def test_without_words_the_wnids_are_the_class_names(tmp_path):
    write_tree(tmp_path, words=False)
    assert load_dataset(f"tiny-imagenet:{tmp_path}", "test").info.class_names is None


def test_missing_wnids_and_empty_class_folder(tree):
    root, _ = tree
    base = root / "tiny-imagenet-200"
    for image in (base / "train" / WNIDS[1] / "images").iterdir():
        image.unlink()
    with pytest.raises(DataError, match=rf"{WNIDS[1]}/images.*holds no images"):
        load_dataset(f"tiny-imagenet:{base}", "train")
    (base / "wnids.txt").unlink()
    with pytest.raises(DataError, match=r"wnids\.txt.*is missing"):
        load_dataset(f"tiny-imagenet:{base}", "test")


def test_bad_annotations(tree):
    root, _ = tree
    notes = root / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    good = notes.read_text()
    notes.write_text(good + "val_0.JPEG\tn00000001\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"line 7: wnid 'n00000001' of val_0.JPEG is not in wnids.txt"):
        load_dataset(f"tiny-imagenet:{root}", "test")
    notes.write_text(good + "val_9.JPEG\tn01443537\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_9\.JPEG' listed at .* line 7 is missing"):
        load_dataset(f"tiny-imagenet:{root}", "test")
    notes.write_text(good + good.splitlines()[0] + "\n")
    with pytest.raises(DataError, match="annotated twice"):
        load_dataset(f"tiny-imagenet:{root}", "test")


def test_corrupt_and_wrong_size_images(tree):
    root, _ = tree
    bad = root / "tiny-imagenet-200" / "val" / "images" / "val_2.JPEG"
    raw = bad.read_bytes()
    bad.write_bytes(b"no jpeg here")
    with pytest.raises(CorruptFileError, match="val_2.JPEG"):
        load_dataset(f"tiny-imagenet:{root}", "test")
    bad.write_bytes(raw[: len(raw) // 3])  # truncated
    with pytest.raises(CorruptFileError, match="val_2.JPEG.*(Truncated|truncated)"):
        load_dataset(f"tiny-imagenet:{root}", "test")
    noisy = root / "tiny-imagenet-200" / "train" / WNIDS[2] / "images" / f"{WNIDS[2]}_5.JPEG"
    data = noisy.read_bytes()
    noisy.write_bytes(data[: len(data) * 2 // 3])  # header intact, scan data cut short
    with pytest.raises(CorruptFileError, match=f"{WNIDS[2]}_5.JPEG' cannot be decoded"):
        load_dataset(f"tiny-imagenet:{root}", "train")
    _jpeg(bad, np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(DataError, match=r"val_2.JPEG' is 48x32; Tiny-ImageNet images are 64x64"):
        load_dataset(f"tiny-imagenet:{root}", "test")


def test_unlisted_class_folder_is_refused(tree):
    root, _ = tree
    (root / "tiny-imagenet-200" / "train" / "n00000002" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="n00000002.*wnids.txt does not list"):
        load_dataset(f"tiny-imagenet:{root}", "train")


def test_decoded_parts_are_cached(tree, monkeypatch):
    from nnforensics.data import tiny_imagenet

    root, _ = tree
    calls = []
    real = tiny_imagenet.decode_images
    monkeypatch.setattr(tiny_imagenet, "decode_images", lambda files, where: calls.append(where) or real(files, where))
    spec = f"tiny-imagenet:{root}"
    first = load_dataset(spec, "train")
    load_dataset(spec, "val")
    first.x.zero_()  # datasets are copies: the cache is untouched
    again = load_dataset(spec, "train")
    assert len(calls) == 1 and again.x.any()
