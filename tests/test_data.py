"""Data sets, augmentation and noise models of the training scripts (MNIST idx, CIFAR-10 pickles / folders / zip)."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from lstmcodec.training import data

from conftest import DATA


@pytest.fixture(scope="module")
def digits():
    z = np.load(DATA / "mnist-test-200.npz")
    return z["images"], z["labels"]


@pytest.fixture(scope="module")
def cifar():
    z = np.load(DATA / "cifar10-test-100.npz")
    return z["images"], z["labels"]


def _idx(array: np.ndarray) -> bytes:
    array = array.astype(np.uint8)
    return struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_mnist_idx_files_gzipped_or_plain(tmp_path, digits):
    images, labels = digits
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels))
    ds = data.load_mnist(tmp_path, "test")
    assert ds.images.shape == (200, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:, 0].numpy(), images) and np.array_equal(ds.labels.numpy(), labels)
    assert ds.classes == [str(d) for d in range(10)]


def test_mnist_truncated_file_is_refused(tmp_path, digits):
    images, labels = digits
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(images)[:-5])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels))
    with pytest.raises(ValueError, match="bytes of data"):
        data.load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="train-images"):
        data.load_mnist(tmp_path, "train")


def _cifar_pickles(folder, images, labels):
    folder.mkdir()
    flat = images.reshape(len(images), -1)
    for i in range(1, 6):
        part = slice((i - 1) * 16, i * 16)
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": flat[part], b"labels": [int(v) for v in labels[part]], b"batch_label": b"x"}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": flat[80:], b"labels": [int(v) for v in labels[80:]]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in data.CIFAR10_CLASSES]}, f)


def test_cifar_pickles_folders_and_zip_agree(tmp_path, cifar):
    images, labels = cifar
    _cifar_pickles(tmp_path / "cifar-10-batches-py", images, labels)
    from_pickles = data.load_cifar10(tmp_path, "test")  # the parent folder is accepted too
    assert from_pickles.images.shape == (20, 3, 32, 32)
    assert np.array_equal(from_pickles.images.numpy(), images[80:])
    assert len(data.load_cifar10(tmp_path / "cifar-10-batches-py", "train")) == 80

    zpath = tmp_path / "cifar.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for k, (im, lab) in enumerate(zip(images[80:], labels[80:])):
            buf = io.BytesIO()
            Image.fromarray(im.transpose(1, 2, 0)).save(buf, "PNG")
            cls = data.CIFAR10_CLASSES[lab]
            z.writestr(f"test/{cls}/{k:03d}.png", buf.getvalue())
            os.makedirs(tmp_path / "png" / "test" / cls, exist_ok=True)
            (tmp_path / "png" / "test" / cls / f"{k:03d}.png").write_bytes(buf.getvalue())
    for ds in (data.load_cifar10(zpath, "test"), data.load_cifar10(tmp_path / "png", "test")):
        order_a = sorted(zip(ds.labels.tolist(), map(bytes, ds.images.numpy())))
        order_b = sorted(zip(from_pickles.labels.tolist(), map(bytes, from_pickles.images.numpy())))
        assert order_a == order_b
        assert ds.classes == data.CIFAR10_CLASSES


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_cifar10(folder, "test")
    assert not (tmp_path / "pwned").exists()


def test_image_folder_resizes_and_labels_by_subfolder(tmp_path):
    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for k in range(3):
            Image.new("RGB", (40 + k, 30), colour).save(tmp_path / cls / f"{k}.png")
    ds = data.load_image_folder(tmp_path, size=16)
    assert ds.classes == ["blue", "red"] and ds.images.shape == (6, 3, 16, 16)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(ds.images[0, 2].min()) == 255 and int(ds.images[3, 0].min()) == 255


def test_epoch_batches_visit_every_item_once_per_epoch_and_are_reproducible():
    s = data.EpochBatches(100, 10, seed=3)
    epoch0 = torch.cat([s(i) for i in range(10)])
    assert sorted(epoch0.tolist()) == list(range(100))
    epoch1 = torch.cat([s(i) for i in range(10, 20)])
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(data.EpochBatches(100, 10, seed=3)(13), s(13))


def test_augment_translates_whole_images_and_flips():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) + 1
    g = torch.Generator().manual_seed(0)
    y = data.augment(x, g, translate=2)
    for a, b in zip(x, y):  # every output is the input shifted by at most 2 px, zero-filled
        found = any(torch.equal(b[:, max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)],
                                a[:, max(0, -dy):8 - max(0, dy), max(0, -dx):8 - max(0, dx)])
                    for dy in range(-2, 3) for dx in range(-2, 3))
        assert found
    flips = [torch.equal(data.augment(x, torch.Generator().manual_seed(s), flip=True)[0], x[0].flip(-1)) for s in range(20)]
    assert 3 < sum(flips) < 17


def test_noise_models_have_the_stated_statistics():
    g = torch.Generator().manual_seed(0)
    gray = torch.full((4, 1, 64, 64), 0.5)
    n = data.Noise("gaussian", mean=-20, var=600, clip=False)(gray, g) - gray
    assert abs(float(n.mean()) * 255 + 20) < 0.5 and abs(float(n.var()) * 255 ** 2 - 600) < 20
    sigma = (data.Noise("gaussian", sigma_max=50, clip=False)(gray, g) - gray).std((1, 2, 3)) * 255
    assert float(sigma.min()) >= 0 and float(sigma.max()) <= 52 and float(sigma.max() - sigma.min()) > 5
    sp = data.Noise("speckle", scale=0.2, clip=False)(gray, g) - gray
    assert abs(float(sp.std()) - 0.1) < 0.005
    salt = data.Noise("salt-pepper", amount=0.1)(gray, g)
    assert abs(float(((salt == 0) | (salt == 1)).float().mean()) - 0.1) < 0.01
    poisson = data.Noise("poisson", peak=30)(gray, g)
    assert abs(float(poisson.mean()) - 0.5) < 0.01
    clipped = data.Noise("mix", mean=-20, var=600)(gray, g)
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1
    with pytest.raises(ValueError, match="unknown noise"):
        data.Noise("pink")(gray, g)


def test_photo_noise_is_what_an_8_bit_file_holds():
    """round=True: the noisy image a user's file holds (clipped to [0, 1], on the 256 levels), the same draw."""
    x = torch.linspace(0, 1, 64 * 64).reshape(1, 1, 64, 64)
    plain = data.Noise("gaussian", var=625, clip=False)(x, torch.Generator().manual_seed(3))
    photo = data.Noise("gaussian", var=625, round=True)(x, torch.Generator().manual_seed(3))
    assert float(plain.min()) < 0 and float(plain.max()) > 1
    assert torch.equal(photo, plain.clamp(0, 1).mul(255).round().div(255))
    assert torch.equal(photo * 255, (photo * 255).round()) and not torch.equal(photo, plain.clamp(0, 1))
    x8 = x.expand(64, 1, 64, 64)
    half = data.Noise("gaussian", var=625, round=True, round_fraction=0.5)(x8, torch.Generator().manual_seed(3))
    rounded = [bool(torch.equal(im * 255, (im * 255).round())) for im in half]
    assert 16 < sum(rounded) < 48 and float(half.min()) < 0


def test_crops_with_rotate_transpose_some_crops_and_keep_the_draw():
    """rotate=True transposes about half the crops of the very crops (and flips) drawn without it."""
    im = torch.arange(3 * 40 * 40, dtype=torch.int64).reshape(3, 40, 40).remainder(256).to(torch.uint8)
    plain = data.RandomCrops([im], 16, 64, seed=5)(7)
    turned = data.RandomCrops([im], 16, 64, seed=5, rotate=True)(7)
    same = [torch.equal(a, b) for a, b in zip(plain, turned)]
    swapped = [torch.equal(a.transpose(-1, -2), b) for a, b in zip(plain, turned)]
    assert all(s or t for s, t in zip(same, swapped)) and 16 < sum(swapped) < 48
