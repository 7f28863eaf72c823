"""Queue rows for what a segmentation run drew rather than reported: its regions of disagreement.

A segmentation agreement run with ``regions_field`` writes one Detection (with an instance mask)
per connected region where its first two fields disagree; those regions are labels a reviewer can
look at, mark and fix, so each becomes a queue row (kind ``disagreement_region``, keyed by the
region's label id). They are read from the field as it is now (a region deleted since the run is
no row) and shaped as findings, so the queue merges them like any audit's findings.

Score: the region's share of the image's pixels (a region covering a quarter of the image scores
0.25); the image size is the region's mask crop divided by its relative box, as the run wrote it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from iou_audit.audits.segmentation.agreement import AUDIT as SEGMENTATION_AUDIT
from iou_audit.results.findings import make_findings

KIND = "disagreement_region"


def image_pixels(mask_shape: tuple, box) -> float | None:
    """The image's pixel count from a region's mask crop ``(h, w)`` and its relative ``[x, y, w, h]``
    box; None when the box is empty.

    Example:
        >>> image_pixels((2, 3), [0.5, 0.0, 0.3, 0.2])   # a 10 x 10 image
        100
    """
    if box is None or len(box) != 4 or not box[2] or not box[3]:
        return None
    return int(round(mask_shape[0] / box[3])) * int(round(mask_shape[1] / box[2]))


def region_findings(dataset, result) -> pd.DataFrame:
    """One finding per region of disagreement the segmentation run ``result`` wrote (none for other
    audits or a run without ``regions_field``), in the shared findings shape.

    Example:
        >>> region_findings(ds, load_audit(ds, "seg")).loc[0, ["kind", "label", "detail"]].tolist()  # doctest: +SKIP
        ['disagreement_region', 'person vs background', "1,204 px (2.1% of the image): seg_r1 says person, ..."]
    """
    config = result.config or {}
    field = config.get("regions_field")
    fields = list(config.get("fields") or [])
    if result.audit != SEGMENTATION_AUDIT or not field or dataset.get_field(field) is None or len(fields) < 2:
        return make_findings(None, audit=result.audit)
    sids, ids, labels, pixels, masks, boxes = dataset.values(
        ["id", f"{field}.detections.id", f"{field}.detections.label", f"{field}.detections.pixels",
         f"{field}.detections.mask", f"{field}.detections.bounding_box"])
    rows = []
    for sid, *per in zip(sids, ids, labels, pixels, masks, boxes):
        for lid, label, n, mask, box in zip(*(p or [] for p in per)):
            total = image_pixels(np.shape(mask), box) if mask is not None else None
            n = int(n) if n is not None else int(np.count_nonzero(mask)) if mask is not None else 0
            share = n / total if total else float("nan")
            a, _, b = str(label or "").partition(" vs ")
            says = (f"{fields[0]} says {a}, {fields[1]} says {b}" if b else str(label or ""))
            rows.append({"kind": KIND, "sample_id": sid, "field": field, "label_id": lid, "label": label or "",
                         "score": min(1.0, share) if share == share else 0.0,
                         "detail": f"{n:,} px ({share:.1%} of the image): {says}" if share == share
                         else f"{n:,} px: {says}"})
    return make_findings(pd.DataFrame(rows) if rows else None, audit=result.audit)
