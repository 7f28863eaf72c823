"""Fingerprints of a label's content (class and geometry) and of a sample, at decision time.

A decision is valid while the fingerprint of the label it was taken on is unchanged. What counts:
- the class (``label``);
- ``bounding_box`` ([x, y, w, h] relative), each value rounded to 6 decimals (1e-6 of the image
  is 0.01 px on a 10,000 px side: far below any edit, above float noise of tools that round-trip
  coordinates through text);
- an instance ``mask`` as its foreground pixels (nonzero) and shape, so re-serialising the same
  mask (another dtype or compression) does not count as a change; a ``mask_path`` by its path;
- a polyline's or keypoint's ``points`` (each rounded to 6 decimals; a missing keypoint stays NaN)
  and a polyline's ``closed`` / ``filled`` flags.
Confidence, tags and other attributes do not count (audits and reviews write those).
A sample (sample-level findings such as leaks, a segmentation image's low mIoU) is fingerprinted by
its file path and, when the sample has Segmentation fields, by the pixel values of their masks
(:func:`segmentation_digest`; fields written by audits, such as a consensus, do not count), so
editing a mask brings a reviewed image row back as changed.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import numpy as np

#: Decimals kept of relative coordinates (see the module docstring).
COORD_DECIMALS = 6


def _round(values: Any) -> Any:
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        return [_round(v) for v in values]
    return round(float(values), COORD_DECIMALS)


def mask_digest(mask: np.ndarray | None) -> str | None:
    """Digest of a mask's shape and foreground pixels (None without a mask).

    Example:
        >>> m = np.array([[0, 1], [1, 1]], dtype=np.uint8)
        >>> mask_digest(m) == mask_digest(m.astype(bool) * 255), mask_digest(m) == mask_digest(m.T)
        (True, True)
        >>> mask_digest(m) == mask_digest(np.array([[1, 1], [1, 0]]))
        False
    """
    if mask is None:
        return None
    fg = np.asarray(mask) != 0
    h = hashlib.sha1(repr(fg.shape).encode())
    h.update(np.packbits(fg, axis=None).tobytes())
    return h.hexdigest()


def label_fingerprint(label: str | None, bounding_box: Iterable[float] | None = None, mask: np.ndarray | None = None,
                      mask_path: str | None = None, points: Any = None, closed: bool | None = None,
                      filled: bool | None = None) -> str:
    """A short stable hex digest of a label's class and geometry.

    Example:
        >>> a = label_fingerprint("RBC", [0.1, 0.2, 0.3, 0.4])
        >>> a == label_fingerprint("RBC", [0.1 + 1e-9, 0.2, 0.3, 0.4]), a == label_fingerprint("WBC", [0.1, 0.2, 0.3, 0.4])
        (True, False)
        >>> a == label_fingerprint("RBC", [0.1, 0.2, 0.3, 0.41]), len(a)
        (False, 20)
    """
    doc = {
        "label": None if label is None else str(label),
        "box": _round(list(bounding_box)) if bounding_box is not None else None,
        "mask": mask_digest(mask),
        "mask_path": mask_path or None,
        "points": _round(points),
        "closed": None if closed is None else bool(closed),
        "filled": None if filled is None else bool(filled),
    }
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def segmentation_digest(masks: dict[str, np.ndarray | None]) -> str:
    """Digest of a sample's semantic masks ``{field: pixel values}`` (None: no mask): each mask's
    shape and values, in the smallest unsigned type holding them, so re-serialising the same map
    (another dtype or compression) does not count as a change.

    Example:
        >>> m = np.array([[0, 3], [3, 3]], np.uint8)
        >>> segmentation_digest({"gt": m}) == segmentation_digest({"gt": m.astype(np.int64)})
        True
        >>> segmentation_digest({"gt": m}) == segmentation_digest({"gt": m.T}), len(segmentation_digest({"gt": None}))
        (False, 20)
    """
    h = hashlib.sha1()
    for name in sorted(masks):
        m = masks[name]
        h.update(json.dumps([name, None if m is None else list(np.shape(m))]).encode())
        if m is None or not np.size(m):
            continue
        m = np.asarray(m)
        top = int(m.max()) if m.dtype != bool else 1
        small = np.uint8 if int(m.min()) >= 0 and top < 256 else np.uint16 if int(m.min()) >= 0 and top < 65536 \
            else np.int64
        h.update(np.ascontiguousarray(m, dtype=small).tobytes())
    return h.hexdigest()[:20]


def sample_fingerprint(filepaths: Iterable[str], mask_digests: Iterable[str] = ()) -> str:
    """Digest of the file paths of a sample-level row (one sample, or the two of a pair, any order)
    and of its samples' :func:`segmentation_digest` (none: the file paths alone).

    Example:
        >>> sample_fingerprint(["/a.png", "/b.png"]) == sample_fingerprint(["/b.png", "/a.png"])
        True
        >>> sample_fingerprint(["/a.png"]) == sample_fingerprint(["/a.png"], ["5e1c"])
        False
    """
    doc = sorted(map(str, filepaths))
    digests = sorted(map(str, mask_digests))
    if digests:
        doc = {"paths": doc, "masks": digests}
    return hashlib.sha1(json.dumps(doc).encode()).hexdigest()[:20]
