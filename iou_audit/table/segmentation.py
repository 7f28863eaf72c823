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
from functools import partial
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

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
    ``sample_ids[i]`` (as :func:`as_values`; None: no mask, or not kept), ``label_ids[f][i]`` its
    Segmentation's id ("" if none), ``present[f][i]`` whether it has a mask, ``results[i]`` what
    the reader's ``per_sample`` function returned for the sample (None without one)."""

    sample_ids: list[str]
    masks: list[list[np.ndarray | None]]
    label_ids: list[list[str]]
    resized: list[str] = field(default_factory=list)  # "sample: field HxW -> HxW" of each resize
    rgb: bool = False  # some mask was an RGB image (its values are 0xRRGGBB)
    present: list[list[bool]] = field(default_factory=list)
    results: list = field(default_factory=list)
    stored: list[list[bytes | None]] = field(default_factory=list)  # [f][i]: the mask's stored bytes (None: a file)


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
                              resize: str = "error", per_sample: Callable[[list], Any] | None = None,
                              keep_masks: bool = True) -> Iterator[SegmentationBatch]:
    """The masks of ``fields`` batch by batch (see the module docstring). The next batch is read and
    decoding in the threads while the caller works on this one, so at most two batches are held.

    ``per_sample(masks)`` (optional) runs in the decoding threads on each sample's masks (one per
    field, as :func:`as_values`, None where missing; sizes checked or resized) right after they are
    decoded, while they are in cache; its results are ``batch.results``. With ``keep_masks=False``
    the masks are not kept (``batch.masks`` is all None; see ``batch.present``): each is inflated
    into a buffer of the thread reused for the next sample, so decoding allocates nothing."""
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
            work = partial(_decode_samples, ids=batch_ids, fields=fields, resize=resize, per_sample=per_sample,
                           keep=keep_masks)
            decoding = pool.map(work, split_even(list(enumerate(jobs)), workers))
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


def _decode_sample(jobs: list, sid: str, fields: Sequence[str], resize: str, per_sample, keep: bool) -> tuple:
    """One sample's masks decoded, as values, sizes checked (or resized) and ``per_sample`` applied:
    ``(masks or None, present, rgb, resized, bad sizes, per_sample's result)``."""
    decoded = [_decode_job(job, None if keep else slot) for slot, job in enumerate(jobs)]
    rgb = any(m is not None and m.ndim == 3 and m.shape[2] in (3, 4) for m in decoded)
    masks = [as_values(m, f"sample {sid} field {f!r}") for m, f in zip(decoded, fields)]
    resized, bad = [], []
    ref = next((m.shape for m in masks if m is not None), None)
    for j, (f, m) in enumerate(zip(fields, masks)):
        if m is None or m.shape == ref:
            continue
        s = m.shape
        if resize == "nearest":
            masks[j] = resize_nearest(m, ref[0], ref[1])
            resized.append(f"{sid}: {f} {s[0]}x{s[1]} -> {ref[0]}x{ref[1]}")
        else:
            bad.append(f"{sid} ({f!r} {s[0]}x{s[1]} vs {ref[0]}x{ref[1]})")
    result = per_sample(masks) if per_sample is not None and not bad else None
    return (masks if keep else None), [m is not None for m in masks], rgb, resized, bad, result


def _decode_samples(chunk: list, ids: list, **kwargs) -> list[tuple]:
    return [_decode_sample(jobs, ids[i], **kwargs) for i, jobs in chunk]


def _finish_batch(batch_ids, docs, decoding, fields, resize) -> SegmentationBatch:
    decoded = [out for chunk in decoding for out in chunk]
    bad = [b for out in decoded for b in out[4]]
    if bad:
        raise ValueError(f"masks of different sizes in {len(bad)} sample(s): {', '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}; pass resize='nearest' to resize them to the "
                         f"first field's size as evaluate_segmentations does")
    n = len(batch_ids)
    masks = [[out[0][j] if out[0] is not None else None for out in decoded] for j in range(len(fields))]
    present = [[out[1][j] for out in decoded] for j in range(len(fields))]
    label_ids = [[str((d.get(f) or {}).get("_id") or "") for d in docs] for f in fields]
    stored = [[(d.get(f) or {}).get("mask") for d in docs] for f in fields]
    return SegmentationBatch(list(batch_ids), masks, label_ids, resized=[r for out in decoded for r in out[3]],
                             rgb=any(out[2] for out in decoded), present=present,
                             results=[out[5] for out in decoded] if n else [], stored=stored)


def _decode_job(job, scratch: int | None = None) -> np.ndarray | None:
    """A stored mask (FiftyOne's ``serialize_numpy_array`` bytes, :mod:`iou_audit.table.npy_codec`)
    or else its ``mask_path`` file; inflating and OpenCV release the GIL, so a batch decodes in threads."""
    data, path = job
    if data is not None:
        return deserialize_array(data, scratch)
    return decode_mask(path) if path else None
