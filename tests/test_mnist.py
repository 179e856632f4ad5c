"""The optional MNIST path: the IDX reader and writer on small files these tests write themselves,
the folder loader, and the download with its checksum checks, all without touching the network."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error

import numpy as np
import pytest
import torch

from labs_lib import LabelledImages, mnist


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test: nothing here may reach the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a URL")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", refuse)


def _tiny_mnist(folder, n=6, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    labels = (np.arange(n) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        mnist.write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        mnist.write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    arr = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    mnist.write_idx(tmp_path / name, arr)
    back = mnist.read_idx(tmp_path / name)
    assert back.shape == arr.shape and back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, arr)


def test_idx_layout_is_the_standard_one(tmp_path):
    # The header of an MNIST label file: 0x00000801, then the count, big-endian.
    mnist.write_idx(tmp_path / "labels.idx", np.array([7, 2, 1], dtype=np.uint8))
    raw = (tmp_path / "labels.idx").read_bytes()
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])
    # and a big-endian int32 payload
    mnist.write_idx(tmp_path / "ints.idx", np.array([1, 256], dtype=np.int32))
    assert (tmp_path / "ints.idx").read_bytes()[8:] == bytes([0, 0, 0, 1, 0, 0, 1, 0])


@pytest.mark.parametrize("payload, match", [
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "two zero bytes"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "unknown IDX type"),
    (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5]), "announces shape"),
])
def test_idx_reader_rejects_malformed_files(tmp_path, payload, match):
    (tmp_path / "bad.idx").write_bytes(payload)
    with pytest.raises(ValueError, match=match):
        mnist.read_idx(tmp_path / "bad.idx")


def test_idx_writer_rejects_unsupported_dtypes(tmp_path):
    with pytest.raises(TypeError):
        mnist.write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_a_local_folder(tmp_path, gz):
    images, labels = _tiny_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        data = mnist.load_mnist(tmp_path, split)
        assert isinstance(data, LabelledImages) and len(data) == 6 and data.shape == (1, 28, 28)
        assert data.num_classes == 10
        assert float(data.images[0].max()) == -1.0 and float(data.images[1].min()) == 1.0
        np.testing.assert_allclose(data.images[:, 0].numpy(), images / 127.5 - 1, atol=1e-6)
        assert torch.equal(data.labels, torch.tensor(labels, dtype=torch.long))
        x, y = data.sample_labelled(4, torch.Generator().manual_seed(0))
        assert x.shape == (4, 1, 28, 28) and y.dtype == torch.int64


def test_load_mnist_explains_missing_files_and_never_downloads_by_default(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        mnist.load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        mnist.load_mnist(tmp_path, "validation")


def test_load_mnist_rejects_mismatched_files(tmp_path):
    mnist.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    mnist.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="expected images"):
        mnist.load_mnist(tmp_path, "train")


@pytest.fixture
def fake_mirror(monkeypatch, tmp_path):
    """Four small gzipped IDX files served by a stand-in for the network, with their checksums."""
    src = tmp_path / "mirror"
    src.mkdir()
    _tiny_mnist(src, gz=True)
    served = {p.name: p.read_bytes() for p in src.iterdir()}
    monkeypatch.setattr(mnist, "MNIST_SHA256", {k: hashlib.sha256(v).hexdigest() for k, v in served.items()})
    calls = []

    def fetch(url, timeout):
        calls.append(url)
        return served[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch", fetch)
    return served, calls


def test_download_verifies_and_is_not_repeated(tmp_path, fake_mirror):
    served, calls = fake_mirror
    root = tmp_path / "data"
    data = mnist.load_mnist(root, "train", download=True)
    assert len(data) == 6 and len(calls) == 4
    assert {p.name for p in root.iterdir()} == set(served)
    mnist.download_mnist(root)  # everything present and verified: nothing fetched again
    assert len(calls) == 4


def test_download_rejects_a_wrong_checksum(tmp_path, fake_mirror, monkeypatch):
    monkeypatch.setattr(mnist, "MNIST_SHA256", {k: "0" * 64 for k in mnist.MNIST_SHA256})
    with pytest.raises(ValueError, match="checksum"):
        mnist.download_mnist(tmp_path / "data")
    assert not any((tmp_path / "data").iterdir())  # nothing unverified is kept


def test_download_rejects_a_corrupt_local_file(tmp_path, fake_mirror):
    root = tmp_path / "data"
    root.mkdir()
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"truncated"))
    with pytest.raises(ValueError, match="delete it"):
        mnist.download_mnist(root)


def test_download_offline_gives_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(ConnectionError, match="offline") as info:
        mnist.load_mnist(tmp_path, "train", download=True)
    assert "by hand" in str(info.value)


def test_checksums_are_the_published_ones():
    assert set(mnist.MNIST_SHA256) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in mnist.MNIST_SHA256.values())


def test_importing_labs_lib_does_not_import_mnist():
    import subprocess
    import sys

    code = "import sys, labs_lib; print('labs_lib.mnist' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_mnist_example_runs_every_stage(tmp_path):
    """examples/mnist_latent_dit.py, the MNIST recipe, shortened to a few steps on 20 stand-in images: each
    stage (autoencoder, latent DiT, judge, sampling) runs on its real networks and the grid is written."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "mnist_latent_dit.py"
    spec = importlib.util.spec_from_file_location("mnist_latent_dit", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    _tiny_mnist(tmp_path, n=20, gz=False)
    out = tmp_path / "grid.png"
    figures = example.main(["--data", str(tmp_path), "--ae-steps", "2", "--dit-steps", "2", "--judge-steps", "2",
                            "--per-digit", "2", "--out", str(out), "--device", "cpu"])
    assert out.stat().st_size > 1000
    assert 0 <= figures["sample accuracy"] <= 1 and 0 <= figures["judge accuracy"] <= 1
    assert np.isfinite(figures["reconstruction mse"])
