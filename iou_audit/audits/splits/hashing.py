"""Image hashes for split-leak detection: exact content hashes of file bytes and 64-bit perceptual
hashes computed from pixels (numpy + Pillow + scipy only; no model, nothing downloaded).

Perceptual hash (pHash, DCT variant): the image is decoded to grayscale, shrunk to 32x32 with box
filtering, transformed with a 2-D type-II DCT, and the 8x8 lowest-frequency coefficients are
compared with their median, one bit each. Low frequencies survive re-encoding, resizing, blur and
global brightness/contrast changes, so copies land within a few bits of each other.

Hashes are numpy ``uint64`` scalars/arrays; ``hash_to_hex``/``hex_to_hash`` give the 16-hex-digit
strings that are cached in the dataset.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numpy as np
import scipy.fft
from PIL import Image

# Default Hamming radius for "near-identical" (of 64 bits). Measured on BCCD (364 real microscope
# images, tests/test_splits_hashing.py): re-encoded (JPEG q20-q50, PNG), resized (x0.25-x1.5),
# brightened/darkened 15 %, contrast +20 %, blurred (sigma 1-2) copies are 0-4 bits from their
# originals (0-6 when resize, brightening, blur and JPEG q60 are combined); distinct images are
# >= 14 bits apart, except two real re-shoots of one field of view (4 bits: refocused; 12: stage
# moved). 8 sits between the two distributions (pHash distances are even: exactly 32 of the 64
# bits are set above the median).
DEFAULT_NEAR_THRESHOLD = 8

PHASH_SIZE = 32  # side of the grayscale thumbnail fed to the DCT
PHASH_LOW = 8  # side of the low-frequency block kept: 8 x 8 = 64 bits
_BIT_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    >>> import tempfile; f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"abc"); f.close()
    >>> file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256_many(paths: Sequence[str], workers: int | None = None) -> list[str]:
    """SHA-256 of many files in a thread pool (hashlib releases the GIL on large buffers).

    A missing or unreadable file raises ``FileNotFoundError`` naming the path.
    """
    with ThreadPoolExecutor(workers or _default_workers()) as pool:
        return list(pool.map(_checked(file_sha256), paths))


def _checked(fn):
    def run(path):
        try:
            return fn(path)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"image file not found: {path!r}") from e
        except OSError as e:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(f"cannot read image {path!r}: {e}") from e

    return run


def load_gray_thumbnail(path, size: int = PHASH_SIZE) -> np.ndarray:
    """Decode an image file (path or file object) to a (size, size) float32 grayscale array with
    box-filter shrinking.

    JPEG ``draft`` mode lets libjpeg decode at 1/2..1/8 scale directly, which is several times
    faster than a full decode and does not change the low frequencies the hash keeps.
    """
    return decode_gray(path, (size,))[0]


def decode_gray(path, sizes: Sequence[int]) -> list[np.ndarray]:
    """One decode of an image, shrunk (box filter) to a (size, size) float32 grayscale array per
    requested size; the JPEG draft keeps at least twice the largest size."""
    with Image.open(path) as im:
        side = 2 * max(sizes)
        im.draft("L", (side, side))
        gray = im.convert("L")
        return [np.asarray(gray.resize((n, n), Image.Resampling.BOX), dtype=np.float32) for n in sizes]


def load_gray_thumbnails(paths: Sequence[str], size: int = PHASH_SIZE, workers: int | None = None) -> np.ndarray:
    """(N, size, size) float32 thumbnails of many image files, decoded in a thread pool
    (Pillow releases the GIL while decoding). Missing files raise ``FileNotFoundError`` naming
    the path; undecodable files raise ``ValueError`` naming the path."""
    loader = _checked(lambda p: load_gray_thumbnail(p, size))
    with ThreadPoolExecutor(workers or _default_workers()) as pool:
        thumbs = list(pool.map(loader, paths))
    if not thumbs:
        return np.zeros((0, size, size), np.float32)
    return np.stack(thumbs)


def phash_from_gray(gray: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hashes of a batch of (N, 32, 32) grayscale thumbnails -> (N,) uint64.

    Bit ``k`` (most significant first) of a hash is 1 when DCT coefficient ``k`` of the 8x8
    low-frequency block (row-major) is above the block's median.

    >>> g = np.random.default_rng(0).uniform(0, 255, (1, 32, 32)).astype(np.float32)
    >>> h = phash_from_gray(g); h.dtype, h.shape
    (dtype('uint64'), (1,))
    >>> int(hamming_distance(h, phash_from_gray(g * 0.5 + 40))[0])  # brightness/contrast change
    0
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 3:
        raise ValueError(f"phash_from_gray expects (N, H, W) grayscale, got shape {gray.shape}")
    coeffs = scipy.fft.dctn(gray, type=2, axes=(1, 2), norm="ortho")[:, :PHASH_LOW, :PHASH_LOW]
    flat = coeffs.reshape(len(coeffs), -1)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return bits_to_hash(bits)


def bits_to_hash(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bool -> (N,) uint64, first column = most significant bit.

    >>> bits = np.zeros((1, 64), bool); bits[0, -1] = True; bits[0, 0] = True
    >>> hash_to_hex(bits_to_hash(bits))
    ['8000000000000001']
    """
    bits = np.asarray(bits, dtype=bool)
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


# Shifted views (the same scene photographed with the stage moved, a crop): pHashes of 81 windows.
# A 144 x 144 thumbnail is pooled 3 x 3 to 48 x 48; every window is 32 x 32 pooled cells (2/3 of the
# image side) at offsets 0, 2, ..., 16 cells (a 9 x 9 grid, steps of 4.2 % of the side), so a shift
# of up to 1/6 of the image in x and y leaves the centre window of one image within 2.1 % of some
# window of the other.
WINDOW_THUMB = 144
WINDOW_POOL = 3
WINDOW_STEP = 2
WINDOW_GRID = 9
CENTER_WINDOW = (WINDOW_GRID * WINDOW_GRID) // 2


def window_stack(thumbs: np.ndarray) -> np.ndarray:
    """(N, 144, 144) thumbnails -> (N, 81, 32, 32) pooled windows (row-major window grid).

    >>> window_stack(np.zeros((2, 144, 144), np.float32)).shape
    (2, 81, 32, 32)
    """
    thumbs = np.asarray(thumbs, dtype=np.float32)
    n, side = len(thumbs), WINDOW_THUMB // WINDOW_POOL
    if thumbs.shape[1:] != (WINDOW_THUMB, WINDOW_THUMB):
        raise ValueError(f"window_stack expects (N, {WINDOW_THUMB}, {WINDOW_THUMB}) thumbnails, got {thumbs.shape}")
    pooled = thumbs.reshape(n, side, WINDOW_POOL, side, WINDOW_POOL).mean(axis=(2, 4))
    windows = np.lib.stride_tricks.sliding_window_view(pooled, (PHASH_SIZE, PHASH_SIZE), axis=(1, 2))
    windows = windows[:, ::WINDOW_STEP, ::WINDOW_STEP]
    return windows.reshape(n, WINDOW_GRID * WINDOW_GRID, PHASH_SIZE, PHASH_SIZE)


def window_hashes_from_gray(thumbs: np.ndarray) -> np.ndarray:
    """(N, 144, 144) thumbnails -> (N, 81) uint64 pHashes of the window grid."""
    windows = window_stack(thumbs)
    return phash_from_gray(windows.reshape(-1, PHASH_SIZE, PHASH_SIZE)).reshape(len(windows), -1)


def normalised_windows(thumbs: np.ndarray) -> np.ndarray:
    """(N, 81, 1024) zero-mean, unit-norm window pixels: dot products are Pearson correlations."""
    w = window_stack(thumbs).reshape(len(thumbs), WINDOW_GRID * WINDOW_GRID, -1).astype(np.float64)
    w -= w.mean(axis=2, keepdims=True)
    norm = np.linalg.norm(w, axis=2, keepdims=True)
    return np.divide(w, norm, out=np.zeros_like(w), where=norm > 0)


# Mirrored and rotated copies (pre-augmented datasets split after augmentation): the 7 non-identity
# symmetries of the square. Thumbnails are squashed to a square, so a 90-degree rotation of a
# 640 x 480 image becomes a rotation of its thumbnail too.
DIHEDRAL = ("hflip", "vflip", "rot180", "transpose", "rot90", "rot270", "antitranspose")


def dihedral(arrays: np.ndarray, name: str) -> np.ndarray:
    """Apply one symmetry of the square to (N, n, n) arrays.

    >>> a = np.arange(4).reshape(1, 2, 2); dihedral(a, "hflip")[0].tolist(), dihedral(a, "rot90")[0].tolist()
    ([[1, 0], [3, 2]], [[1, 3], [0, 2]])
    """
    ops = {"hflip": lambda a: a[:, :, ::-1], "vflip": lambda a: a[:, ::-1, :], "rot180": lambda a: a[:, ::-1, ::-1],
           "transpose": lambda a: a.transpose(0, 2, 1), "rot90": lambda a: np.rot90(a, 1, axes=(1, 2)),
           "rot270": lambda a: np.rot90(a, 3, axes=(1, 2)),
           "antitranspose": lambda a: a[:, ::-1, ::-1].transpose(0, 2, 1)}
    if name not in ops:
        raise ValueError(f"unknown symmetry {name!r}; one of {DIHEDRAL}")
    return np.ascontiguousarray(ops[name](np.asarray(arrays)))


def dihedral_hashes(thumbs: np.ndarray) -> np.ndarray:
    """(N, 32, 32) thumbnails -> (N, 7) uint64 pHashes of their mirrored/rotated versions
    (column order ``DIHEDRAL``): a flipped copy of image A has a pHash close to A's column."""
    thumbs = np.asarray(thumbs, dtype=np.float32)
    if not len(thumbs):
        return np.zeros((0, len(DIHEDRAL)), np.uint64)
    return np.stack([phash_from_gray(dihedral(thumbs, name)) for name in DIHEDRAL], axis=1)


def phash_files(paths: Sequence[str], workers: int | None = None) -> np.ndarray:
    """(N,) uint64 perceptual hashes of image files (decoded in a thread pool)."""
    return phash_from_gray(load_gray_thumbnails(paths, workers=workers))


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise number of differing bits between uint64 hash arrays (broadcasting).

    >>> int(hamming_distance(np.uint64(0b1011), np.uint64(0b0001)))
    2
    """
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))).astype(np.int64)


def hash_to_hex(hashes: Iterable) -> list[str]:
    """uint64 hashes -> 16-digit lowercase hex strings (the cached form).

    >>> hash_to_hex(np.array([255], np.uint64))
    ['00000000000000ff']
    """
    return [f"{int(h):016x}" for h in np.asarray(hashes, dtype=np.uint64).ravel()]


def hex_to_hash(hexes: Sequence[str]) -> np.ndarray:
    """16-digit hex strings -> (N,) uint64; a malformed value raises ``ValueError`` naming it.

    >>> hex_to_hash(['00000000000000ff', 'ffffffffffffffff']).tolist()
    [255, 18446744073709551615]
    """
    out = np.empty(len(hexes), np.uint64)
    for i, text in enumerate(hexes):
        try:
            out[i] = np.uint64(int(text, 16))
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"not a 64-bit hex hash: {text!r} (position {i})") from e
    return out
