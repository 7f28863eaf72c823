"""FiftyOne label objects -> geometry: ``compute_ious`` over Detections or filled Polylines.

Same contract as ``fiftyone.utils.iou.compute_ious(preds, gts, ..., tolerance=None)`` (a
``len(preds) x len(gts)`` matrix; ``iscrowd`` is the name of a boolean attribute or a function of a
ground-truth label; ``classwise=True`` makes objects with different ``label`` values 0) but computed
by ``iou_audit.geometry``: boxes with ``box_iou`` (one compiled call), filled polylines with shapely 2
(``polygon_iou``), instance masks with ``cropped_mask_iou`` (exact pixels, overlap windows only).

Differences from FiftyOne, on purpose:

- Masks are placed in the frame the way FiftyOne renders them (``Detection.to_segmentation``), in a
  frame of size ``frame_size=(w, h)``. FiftyOne's ``compute_ious(use_masks=True, tolerance=None)``
  does not know the frame: it guesses one per object as ``round(mask_w / box_w)`` x
  ``round(mask_h / box_h)``, pastes each mask at ``round`` -ed box corners on a canvas of that size
  and, when the two guesses differ, resizes the smaller canvas (nearest neighbour). When every mask
  has exactly its box's pixel size the guess is the true frame and both agree exactly (tested to
  1e-6, and against pycocotools). When it has not (a mask stored at another resolution than its box,
  as model outputs often are), FiftyOne's value approximates the rendered truth. Measured by
  ``tests/test_labels_compute_ious.py::test_masks_of_other_sizes_vs_fiftyone`` (run with ``-s``) on
  about 270 overlapping pairs each in a 640 x 480 frame, boxes 5-40% of the frame: 28 x 28 masks
  (Mask R-CNN style) |error| median 0.0055, p95 0.030, max 0.043 IoU; masks of random 8-80 px
  sides: median 0.0058, p95 0.028, max 0.059. Enough to flip matches near a 0.5 or 0.75 threshold.
  Without ``frame_size`` we infer the frame like FiftyOne but require every object to imply the
  same one (else a ``ValueError`` asks for ``frame_size``).
- Masks imported by FiftyOne's COCO importer were cut at *rounded* box corners, not where
  ``to_segmentation`` puts them back: pass ``rounding="round"`` for those. Then the IoUs equal
  pycocotools' on the original annotations exactly (1,820 overlapping pairs of the COCO val2014
  sample); the default placement was off on 956 of them, by up to 0.10 IoU.
- ``iscrowd`` is honoured for masks (COCO crowd IoU, intersection over the prediction's area);
  FiftyOne drops it in its dense-mask mode and returns plain IoU there. An attribute *name* works
  here; FiftyOne 1.22 raises ``TypeError`` on one (its lambda captures itself), only functions work.
- ``metric`` adds GIoU, DIoU, CIoU and intersection-over-smaller for boxes (DIoU/CIoU need
  ``frame_size``, they are not scale invariant).
- Self-intersecting polygons are repaired keeping every lobe (``make_valid``); FiftyOne's
  ``buffer(0)`` may drop one. Open (unfilled) polylines (FiftyOne's OKS-like similarity), keypoints
  and 3-D cuboids are not supported: a ``ValueError`` says so.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import fiftyone.core.labels as fol
import numpy as np

from iou_audit.geometry.boxes import METRICS, box_iou, xywh_to_xyxy
from iou_audit.geometry.masks import cropped_mask_iou
from iou_audit.geometry.polygons import polygon_iou

Crowd = str | Callable[[fol.Label], bool] | None
_CUBOID_FIELDS = ("dimensions", "location", "rotation")  # FiftyOne's test for a 3-D detection


def _crowd_flags(gts: Sequence[fol.Label], iscrowd: Crowd) -> np.ndarray | None:
    if iscrowd is None:
        return None
    if isinstance(iscrowd, str):
        name = iscrowd
        return np.array([bool(g.get_attribute_value(name, False)) for g in gts], dtype=bool)
    if callable(iscrowd):
        return np.array([bool(iscrowd(g)) for g in gts], dtype=bool)
    raise TypeError(f"iscrowd must be an attribute name, a function or None, got {iscrowd!r}")


def _kind(labels: Sequence[fol.Label], name: str) -> type:
    kinds = {type(x) for x in labels}
    if len(kinds) != 1:
        raise ValueError(f"{name} mixes label types {sorted(k.__name__ for k in kinds)}")
    kind = kinds.pop()
    if not issubclass(kind, (fol.Detection, fol.Polyline)):
        raise ValueError(
            f"{name} holds {kind.__name__} labels; compute_ious supports Detection and filled "
            "Polyline"
        )
    if issubclass(kind, fol.Detection):
        for k, det in enumerate(labels):
            if all(getattr(det, a, None) is not None for a in _CUBOID_FIELDS):
                raise ValueError(f"{name}[{k}] (id {det.id}) is a 3-D cuboid: not supported")
    return kind


def _detection_boxes(dets: Sequence[fol.Detection], name: str) -> np.ndarray:
    """(N, 4) relative xyxy; x2 = x + w computed as FiftyOne computes it (bit-identical)."""
    rows = []
    for k, det in enumerate(dets):
        box = det.bounding_box
        if box is None or len(box) != 4:
            raise ValueError(f"{name}[{k}] (id {det.id}) has no [x, y, w, h] bounding_box: {box!r}")
        rows.append(box)
    return xywh_to_xyxy(np.array(rows, dtype=np.float64).reshape(-1, 4))


def _polyline_boxes(polylines: Sequence[fol.Polyline]) -> np.ndarray:
    """Extent of each polyline's points clamped to [0, 1] (``Polyline.to_detection``'s box)."""
    out = np.full((len(polylines), 4), np.nan)
    for k, pl in enumerate(polylines):
        pts = [p for shape in pl.points or [] for p in shape]
        if pts:
            a = np.asarray(pts, dtype=np.float64)
            out[k] = [a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()]
    return np.clip(out, 0.0, 1.0)


def _masks(dets: Sequence[fol.Detection], name: str) -> list[np.ndarray]:
    masks = []
    for k, det in enumerate(dets):
        mask = det.get_mask()
        if mask is None:
            raise ValueError(
                f"{name}[{k}] (id {det.id}) has no mask (use_masks=True needs mask or mask_path)"
            )
        masks.append(mask)
    return masks


def infer_frame_size(masks: Sequence[np.ndarray], boxes: np.ndarray) -> tuple[int, int]:
    """The frame size that every (mask, relative xyxy box) pair implies, as FiftyOne guesses it.

    ``(round(mask_w / box_w), round(mask_h / box_h))``; degenerate boxes are skipped. Raises a
    ``ValueError`` when objects imply different sizes (pass ``frame_size`` then).

    Example:
        >>> infer_frame_size([np.ones((2, 4), bool)], np.array([[0.1, 0.2, 0.5, 0.7]]))
        (10, 4)
    """
    sizes = set()
    for mask, (x1, y1, x2, y2) in zip(masks, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        h, w = np.shape(mask)[:2]
        if x2 > x1 and y2 > y1 and np.isfinite([x1, y1, x2, y2]).all():
            sizes.add((round(w / (x2 - x1)), round(h / (y2 - y1))))
    if len(sizes) > 1:
        raise ValueError(
            f"the masks imply different frame sizes {sorted(sizes)[:5]} (mask shape / box size): "
            "pass frame_size=(width, height)"
        )
    size = sizes.pop() if sizes else (1, 1)
    if min(size) <= 0:
        raise ValueError(f"masks imply an empty frame {size}: pass frame_size=(width, height)")
    return size


def compute_ious(
    preds: Sequence[fol.Detection | fol.Polyline],
    gts: Sequence[fol.Detection | fol.Polyline],
    iscrowd: Crowd = None,
    classwise: bool = False,
    use_masks: bool = False,
    metric: str = "iou",
    frame_size: tuple[int, int] | None = None,
    use_boxes: bool = False,
    rounding: str = "floor",
) -> np.ndarray:
    """Pairwise IoU of FiftyOne labels, ``fiftyone.utils.iou.compute_ious`` semantics, our engine.

    Args:
        preds: N ``fo.Detection`` or N ``fo.Polyline`` (filled polygons).
        gts: M labels of the same type.
        iscrowd: name of a boolean attribute of the ground truth, or a function of a ground-truth
            label; crowd columns use the prediction's area as the union (COCO).
        classwise: if True, pairs with different ``label`` have IoU 0.
        use_masks: Detections only: compare instance masks (``mask`` or ``mask_path``) as pixels.
        metric: ``"iou"``; for boxes also ``"giou"``, ``"diou"``, ``"ciou"``, ``"ios"``.
        frame_size: ``(width, height)`` in pixels: where masks are rendered, and the pixel scale of
            DIoU/CIoU. Masks without it: inferred from mask and box sizes (see the module notes).
        use_boxes: Polylines only: compare their bounding boxes instead of their shapes.
        rounding: mask placement, ``"floor"`` (``to_segmentation``) or ``"round"`` (COCO importer);
            see ``iou_audit.geometry.masks``.

    Returns:
        (N, M) float64 in [0, 1] (GIoU/DIoU/CIoU in [-1, 1]).

    Example:
        >>> import fiftyone as fo
        >>> a = fo.Detection(label="cat", bounding_box=[0.0, 0.0, 0.5, 0.5])
        >>> b = fo.Detection(label="dog", bounding_box=[0.25, 0.25, 0.5, 0.5])
        >>> compute_ious([a], [a, b]).round(4).tolist()
        [[1.0, 0.1429]]
        >>> compute_ious([a], [a, b], classwise=True).tolist()
        [[1.0, 0.0]]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    preds, gts = list(preds or []), list(gts or [])
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    kind = _kind(gts, "gts")
    if _kind(preds, "preds") is not kind:
        raise ValueError(f"preds are {type(preds[0]).__name__}, gts are {kind.__name__}")
    crowd = _crowd_flags(gts, iscrowd)
    if crowd is not None and metric != "iou":
        raise ValueError(f"iscrowd is only defined for metric='iou', got {metric!r}")
    polygons = issubclass(kind, fol.Polyline) and not use_boxes
    if (polygons or (use_masks and kind is fol.Detection)) and metric != "iou":
        raise ValueError(
            f"metric {metric!r} is only available for boxes; masks and polygons use 'iou'"
        )

    if polygons:
        if not any(g.filled for g in gts):
            raise ValueError(
                "gts are open polylines (filled=False): only filled polygons are supported"
            )
        polys1, polys2 = [p.points or [] for p in preds], [g.points or [] for g in gts]
        ious = polygon_iou(polys1, polys2, crowd=crowd)
    elif issubclass(kind, fol.Polyline):
        ious = box_iou(_polyline_boxes(preds), _polyline_boxes(gts), crowd=crowd)
    elif use_masks:
        b1, b2 = _detection_boxes(preds, "preds"), _detection_boxes(gts, "gts")
        m1, m2 = _masks(preds, "preds"), _masks(gts, "gts")
        if frame_size is None:
            frame_size = infer_frame_size(m1 + m2, np.concatenate([b1, b2]))
        ious = cropped_mask_iou(m1, b1, m2, b2, frame_size, crowd=crowd, rounding=rounding)
    else:
        b1, b2 = _detection_boxes(preds, "preds"), _detection_boxes(gts, "gts")
        if metric in ("diou", "ciou"):
            if frame_size is None:
                raise ValueError(f"metric {metric!r} needs frame_size=(width, height) in pixels")
            scale = np.array([frame_size[0], frame_size[1]] * 2, dtype=np.float64)
            b1, b2 = b1 * scale, b2 * scale
        ious = box_iou(b1, b2, metric=metric, crowd=crowd)

    if classwise:
        same = np.array([p.label for p in preds], dtype=object)[:, None] == np.array(
            [g.label for g in gts], dtype=object
        )[None, :]
        ious = np.where(same, ious, 0.0)
    return ious
