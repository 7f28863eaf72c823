"""Reading ``fo.Segmentation`` fields in bulk: masks in the database or ``mask_path`` files on disk.

:func:`iter_segmentation_batches` yields the masks of several Segmentation fields batch by batch
(``batch_size`` samples at a time, so memory is bounded by two batches: the one yielded and the
next, decoding meanwhile): the Segmentation documents come from one raw query over the view, read
batch by batch from its cursor; the stored
masks (FiftyOne's zlib-compressed ``np.save`` bytes, as ``fiftyone.core.utils.deserialize_numpy_array``
reads them) and the ``mask_path`` files are decoded in a thread pool (zlib and OpenCV release the
GIL). Decoding is FiftyOne's (``Segmentation.get_mask``): the file is read with
``cv2.IMREAD_UNCHANGED`` and colour files are turned RGB.

Pixel values: a 2-D mask holds integer targets; a 3-channel (RGB) mask is turned into ``0xRRGGBB``
integers as ``fiftyone.core.fields.rgb_array_to_int`` does, and RGB hex ``mask_targets`` keys
(``"#ff6d04"``) become the same integers (``hex_to_int``), so a field's classes are integers either
way. The class names are the field's ``mask_targets`` (``dataset.mask_targets[field]``, else
``dataset.default_mask_targets``); values without a target are named by their value (or hex colour).

Sizes: masks of one sample that differ in size are an error naming the samples, unless
``resize="nearest"``: then each field's mask is resized to the first field's size by nearest
neighbour (``cv2.INTER_NEAREST`` on the class indices), as ``evaluate_segmentations`` resizes a
prediction to its ground truth (FiftyOne also casts the values to uint8 first, wrapping values
above 255; here values are kept).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterator, Sequence

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.table.npy_codec import deserialize_array

RESIZES = ("error", "nearest")


def rgb_to_int(mask: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` RGB mask as ``0xRRGGBB`` integers (``fiftyone.core.fields.rgb_array_to_int``).

    Example:
        >>> rgb_to_int(np.array([[[255, 109, 4]]], np.uint8)).tolist()
        [[16739588]]
    """
    m = np.asarray(mask)
    return (m[..., 0].astype(np.int64) << 16) + (m[..., 1].astype(np.int64) << 8) + m[..., 2].astype(np.int64)


def hex_to_int(target: str) -> int:
    """``"#ff6d04"`` -> ``0xff6d04`` (``fiftyone.core.fields.hex_to_int``).

    Example:
        >>> hex_to_int("#ff6d04")
        16739588
    """
    return (int(target[1:3], 16) << 16) + (int(target[3:5], 16) << 8) + int(target[5:7], 16)


def int_to_hex(value: int) -> str:
    """``0xff6d04`` -> ``"#ff6d04"``.

    Example:
        >>> int_to_hex(16739588)
        '#ff6d04'
    """
    return "#%02x%02x%02x" % ((value >> 16) & 255, (value >> 8) & 255, value & 255)


def _is_rgb_target(key) -> bool:
    return isinstance(key, str) and len(key) == 7 and key.startswith("#")


def mask_targets(samples, field_name: str) -> tuple[dict[int, str], bool]:
    """``({value: name}, is_rgb)`` of a Segmentation field's mask targets (hex keys as ints)."""
    root = fop.root_dataset(samples)
    targets = dict((root.mask_targets or {}).get(field_name) or root.default_mask_targets or {})
    if targets and all(_is_rgb_target(k) for k in targets):
        return {hex_to_int(k): str(v) for k, v in targets.items()}, True
    try:
        return {int(k): str(v) for k, v in targets.items()}, False
    except (TypeError, ValueError):
        raise ValueError(f"mask_targets of {field_name!r} mix RGB hex and integer keys: {sorted(map(str, targets))}"
                         ) from None


def check_segmentation_field(samples, field_name: str) -> None:
    """A clear error unless ``field_name`` is a Segmentation field of an image dataset."""
    import fiftyone as fo

    if not isinstance(field_name, str) or not field_name:
        raise ValueError(f"segmentation field must be a non-empty string, got {field_name!r}")
    if samples.media_type in ("video", "group") or field_name.startswith("frames."):
        raise NotImplementedError(f"video and grouped datasets are not supported (field {field_name!r})")
    ftype = samples.get_field(field_name)
    doc = getattr(getattr(ftype, "document_type", None), "__name__", None)
    if ftype is None or doc != "Segmentation":
        have = sorted(samples.get_field_schema(embedded_doc_type=fo.Segmentation))
        what = "does not exist" if ftype is None else f"holds {doc or type(ftype).__name__}"
        raise ValueError(f"field {field_name!r} {what}; Segmentation fields: {have}")


def decode_mask(path: str) -> np.ndarray:
    """A mask file as FiftyOne reads it (``IMREAD_UNCHANGED``, colour as RGB); an error names the file."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"mask file {path!r} cannot be read")
    if img.ndim == 3:
        img = img[..., 2::-1] if img.shape[2] >= 3 else img[..., 0]
    return img


def as_values(mask: np.ndarray | None, where: str) -> np.ndarray | None:
    """A decoded mask as 2-D integer pixel values (its own unsigned dtype kept; bool as uint8; RGB ->
    int64 ``0xRRGGBB``); an error names ``where``."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] in (3, 4):
        return rgb_to_int(m[..., :3])
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.ndim != 2 or not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
        raise ValueError(f"{where}: a segmentation mask must be a 2-D integer or RGB array, got {m.dtype} {m.shape}")
    if m.dtype == bool:
        return m.view(np.uint8)
    return m if m.dtype.kind == "u" else m.astype(np.int64, copy=False)


@dataclass
class SegmentationBatch:
    """Masks of one batch of samples: ``masks[f][i]`` is field ``f``'s 2-D int64 pixel values of
    ``sample_ids[i]`` (as :func:`as_values`; None: no mask), ``label_ids[f][i]`` its Segmentation's id ("" if none)."""

    sample_ids: list[str]
    masks: list[list[np.ndarray | None]]
    label_ids: list[list[str]]
    resized: list[str] = field(default_factory=list)  # "sample: field HxW -> HxW" of each resize
    rgb: bool = False  # some mask was an RGB image (its values are 0xRRGGBB)


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of integer values (``cv2.INTER_NEAREST`` on value indices).

    Example:
        >>> resize_nearest(np.array([[1, 2], [3, 40000]]), 4, 4)[::2, ::2].tolist()
        [[1, 2], [3, 40000]]
    """
    import cv2

    values, index = np.unique(mask, return_inverse=True)
    dtype = np.uint16 if len(values) <= 1 << 16 else np.float32
    small = index.reshape(mask.shape).astype(dtype)
    return values[cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int64)]


def iter_segmentation_batches(samples, fields: Sequence[str], batch_size: int = 256, workers: int = 4,
                              resize: str = "error") -> Iterator[SegmentationBatch]:
    """The masks of ``fields`` batch by batch (see the module docstring). The next batch is read and
    decoding in the threads while the caller works on this one, so at most two batches are held."""
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {list(RESIZES)}, got {resize!r}")
    for f in fields:
        check_segmentation_field(samples, f)
    # one raw query for the whole view, read batch by batch: the Segmentation documents as stored
    # (mask = zlib'd np.save bytes), in the view's order
    cursor = fop.aggregate_raw(samples, [{"$project": {f: True for f in fields}}])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = None
        while docs := list(islice(cursor, batch_size)):
            batch_ids = [str(d["_id"]) for d in docs]
            jobs = [[((d.get(f) or {}).get("mask"), (d.get(f) or {}).get("mask_path")) for f in fields] for d in docs]
            # submitted now, collected after the previous batch; one task per thread (few wake-ups)
            decoding = pool.map(_decode_samples, split_even(jobs, workers))
            if pending is not None:
                yield _finish_batch(*pending, fields, resize)
            pending = (batch_ids, docs, decoding)
        if pending is not None:
            yield _finish_batch(*pending, fields, resize)


def split_even(items: list, parts: int) -> list[list]:
    """``items`` in at most ``parts`` consecutive chunks of near-equal size (one task per thread).

    Example:
        >>> split_even([1, 2, 3, 4, 5], 2)
        [[1, 2, 3], [4, 5]]
    """
    parts = max(1, min(parts, len(items)))
    step, extra = divmod(len(items), parts)
    bounds = np.cumsum([0] + [step + (i < extra) for i in range(parts)])
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _decode_sample(jobs: list) -> list[np.ndarray | None]:
    return [_decode_job(job) for job in jobs]


def _decode_samples(samples_jobs: list) -> list[list[np.ndarray | None]]:
    return [_decode_sample(jobs) for jobs in samples_jobs]


def _finish_batch(batch_ids, docs, decoding, fields, resize) -> SegmentationBatch:
    decoded = [masks for chunk in decoding for masks in chunk]
    masks = [[as_values(decoded[i][j], f"sample {sid} field {f!r}") for i, sid in enumerate(batch_ids)]
             for j, f in enumerate(fields)]
    label_ids = [[str((d.get(f) or {}).get("_id") or "") for d in docs] for f in fields]
    rgb = any(m is not None and np.ndim(m) == 3 and np.shape(m)[2] in (3, 4) for row in decoded for m in row)
    batch = SegmentationBatch(list(batch_ids), masks, label_ids, rgb=rgb)
    _check_sizes(batch, fields, resize)
    return batch


def _decode_job(job) -> np.ndarray | None:
    """A stored mask (FiftyOne's ``serialize_numpy_array`` bytes, :mod:`iou_audit.table.npy_codec`)
    or else its ``mask_path`` file; inflating and OpenCV release the GIL, so a batch decodes in threads."""
    data, path = job
    if data is not None:
        return deserialize_array(data)
    return decode_mask(path) if path else None


def _check_sizes(batch: SegmentationBatch, fields: Sequence[str], resize: str) -> None:
    bad = []
    for i, sid in enumerate(batch.sample_ids):
        shapes = [m[i].shape if m[i] is not None else None for m in batch.masks]
        ref = next((s for s in shapes if s is not None), None)
        for f, m, s in zip(fields, batch.masks, shapes):
            if s is None or s == ref:
                continue
            if resize == "nearest":
                m[i] = resize_nearest(m[i], ref[0], ref[1])
                batch.resized.append(f"{sid}: {f} {s[0]}x{s[1]} -> {ref[0]}x{ref[1]}")
            else:
                bad.append(f"{sid} ({f!r} {s[0]}x{s[1]} vs {ref[0]}x{ref[1]})")
    if bad:
        raise ValueError(f"masks of different sizes in {len(bad)} sample(s): {', '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}; pass resize='nearest' to resize them to the "
                         f"first field's size as evaluate_segmentations does")
