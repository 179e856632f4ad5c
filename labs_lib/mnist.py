r"""Optional: MNIST (70,000 labelled 28×28 digits), read from IDX files. Never needed by the course's CI.

The course's notebooks use scikit-learn's small 8×8 digits (:mod:`labs_lib.digits`), which ship
with scikit-learn. MNIST is for those who want bigger images, and this module is all that it takes:

* :func:`read_idx` / :func:`write_idx` read and write the IDX format the files come in (plain or
  gzipped): a 4-byte magic number (two zero bytes, a type code, the number of axes), one big-endian
  32-bit size per axis, then the values in row-major order;
* :func:`load_mnist` reads the four standard files from a local folder and returns a
  :class:`~labs_lib.digits.LabelledImages` of ``(N, 1, 28, 28)`` images in ``[-1, 1]``;
* :func:`download_mnist` fetches the files, **only when asked**, and checks each against its
  SHA-256 checksum. Nothing is downloaded at import time or by default, and torchvision is not needed.

Example::

    from labs_lib.mnist import load_mnist
    train = load_mnist("data/mnist", split="train", download=True)   # online, once
    train = load_mnist("data/mnist", split="train")                  # later, offline
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .digits import LabelledImages

#: the four files of MNIST and the SHA-256 checksums of their gzipped versions
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
#: public mirrors of the original files, tried in order
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# IDX type codes → big-endian NumPy dtypes
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped if its name ends in ``.gz``) into a NumPy array of its shape.

    Raises:
        ValueError: if the file is not a well-formed IDX file (bad magic number, unknown type
            code, or a size that does not match the header).
    """
    path = Path(path)
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes.")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}).")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: the file ends inside its header ({ndim} axes announced).")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: the header announces shape {shape} ({expected} bytes of data), "
                         f"but the file holds {len(data) - header} bytes after it.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped if the name ends in ``.gz``); dtypes as in :func:`read_idx`."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes:
        raise TypeError(f"IDX stores uint8, int8, int16, int32, float32 or float64, got {array.dtype}.")
    if array.ndim > 255:
        raise ValueError("IDX stores at most 255 axes.")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    body = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + body)


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, timeout: float) -> bytes:
    """Download ``url`` (a separate function, so that tests can replace it without a network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https mirrors)
        return response.read()


def download_mnist(root: str | os.PathLike, mirrors: tuple[str, ...] = MNIST_MIRRORS,
                   timeout: float = 30.0) -> Path:
    """Download the four gzipped MNIST files into ``root`` (those not already there, verified).

    Every file is checked against :data:`MNIST_SHA256` before it is kept; a file already in
    ``root`` with the right checksum is not downloaded again.

    Raises:
        ConnectionError: when no mirror can be reached (e.g. the machine is offline); the message
            says how to place the files by hand instead.
        ValueError: when a downloaded file (or one already in ``root``) has the wrong checksum.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_SHA256.items():
        target = root / name
        if target.exists():
            if sha256(target) == expected:
                continue
            raise ValueError(f"{target} exists but its SHA-256 checksum is wrong (a partial or different "
                             "file): delete it and download again.")
        errors = []
        for mirror in mirrors:
            try:
                data = _fetch(mirror + name, timeout)
            except (urllib.error.URLError, OSError) as err:  # offline, DNS failure, timeout, HTTP error
                errors.append(f"{mirror}: {err}")
                continue
            got = hashlib.sha256(data).hexdigest()
            if got != expected:
                errors.append(f"{mirror}: checksum mismatch (got {got[:12]}…, expected {expected[:12]}…)")
                continue
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(data)
            partial.replace(target)  # only a verified, complete file ever carries the final name
            break
        else:
            if all("checksum" in e for e in errors):
                raise ValueError(f"every mirror served {name} with a wrong checksum: " + "; ".join(errors))
            raise ConnectionError(
                f"could not download {name}: is this machine offline? Tried: " + "; ".join(errors)
                + f". Copy the four MNIST .gz files ({', '.join(MNIST_SHA256)}) into {root} by hand instead, "
                "or use the embedded digits (labs_lib.digits.Digits).")
    return root


def _find(root: Path, stem: str) -> Path | None:
    for candidate in (root / (stem + ".gz"), root / stem):
        if candidate.exists():
            return candidate
    return None


def load_mnist(root: str | os.PathLike, split: str = "train", download: bool = False,
               device: torch.device | str | None = None) -> LabelledImages:
    """MNIST's ``split`` (``"train"``: 60,000 images, ``"test"``: 10,000) from the folder ``root``.

    ``root`` holds the standard IDX files, gzipped or not (e.g. ``train-images-idx3-ubyte.gz``).
    With ``download=True`` missing files are first fetched and verified by :func:`download_mnist`;
    without it nothing touches the network.

    Returns:
        A :class:`~labs_lib.digits.LabelledImages` of ``(N, 1, 28, 28)`` float32 images scaled from
        ``0..255`` to ``[-1, 1]``, with int64 labels 0–9.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    root = Path(root)
    image_stem, label_stem = _SPLITS[split]
    images_path, labels_path = _find(root, image_stem), _find(root, label_stem)
    if images_path is None or labels_path is None:
        if not download:
            raise FileNotFoundError(
                f"MNIST's {split} files ({image_stem}[.gz], {label_stem}[.gz]) are not in {root}. Copy them "
                "there, or call load_mnist(..., download=True) on a machine that is online.")
        download_mnist(root)
        images_path, labels_path = _find(root, image_stem), _find(root, label_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"expected images (N, height, width) and labels (N,), got {images.shape} and {labels.shape}.")
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return LabelledImages(x, y, num_classes=10, device=device)
