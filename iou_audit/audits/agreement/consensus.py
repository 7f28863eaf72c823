"""Consensus labels fused from the annotators' clusters (inputs are never modified).

- Which objects: clusters found by at least the quorum of covering annotators.
- Box: the members' boxes averaged with weights = each member's mean IoU with the other members
  (Weighted Boxes Fusion's real average, not the member nearest the mean as CVAT/Datumaro pick);
  a lone member has weight 1. With a single weight pattern the average is the plain mean.
- Mask (instance masks): per-pixel majority of the members placed in the image (a pixel is kept
  when at least half of the members cover it); the box is then the mask's pixel extent.
- Class: majority vote (ties: alphabetical, as in ``stats.cluster_table``).
- Confidence ("agreement"): share of covering annotators that found the object times the mean
  pairwise IoU of its members (1 for a single member).
- Members: the fused labels' ids, kept so every consensus label can be traced back.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def fuse_boxes(mem: pd.DataFrame, clusters: np.ndarray) -> np.ndarray:
    """Agreement-weighted average box (relative xyxy) of each requested cluster.

    Example: two members, IoU weights equal -> the plain mean:
        >>> m = pd.DataFrame({"cluster": [0, 0], "member_iou": [.5, .5], "x1": [0., .2], "y1": [0., 0.],
        ...                   "x2": [.4, .6], "y2": [.4, .4]})
        >>> fuse_boxes(m, np.array([0])).tolist()
        [[0.1, 0.0, 0.5, 0.4]]
    """
    sel = mem[np.isin(mem.cluster.to_numpy(), clusters)]
    w = sel.member_iou.fillna(1.0).to_numpy()
    w = np.where(w > 0, w, 1e-9)  # a member sharing no overlap still counts, barely
    weighted = sel[["x1", "y1", "x2", "y2"]].to_numpy() * w[:, None]
    idx = np.searchsorted(clusters, sel.cluster.to_numpy())
    num = np.zeros((len(clusters), 4))
    np.add.at(num, idx, weighted)
    den = np.bincount(idx, weights=w, minlength=len(clusters))
    return num / den[:, None]


def majority_mask(masks, boxes: np.ndarray, frame: tuple[int, int]):
    """Per-pixel majority of cropped instance masks; returns ``(mask, relative xyxy box)`` or None.

    Example: two 2x2 masks in a 4x4 image, one pixel overlapping -> half-coverage keeps the union:
        >>> sq = np.ones((2, 2), bool)
        >>> m, b = majority_mask([sq, sq], np.array([[0, 0, .5, .5], [.25, .25, .75, .75]]), (4, 4))
        >>> int(m.sum()), b
        (7, [0.0, 0.0, 0.75, 0.75])
    """
    from iou_audit.geometry.masks import mask_pixel_rects

    w, h = frame
    rects = mask_pixel_rects(np.asarray(boxes, dtype=float).reshape(-1, 4), np.array([w, h]))
    x0, y0 = rects[:, 0].min(), rects[:, 1].min()
    x1, y1 = rects[:, 2].max(), rects[:, 3].max()
    if x1 <= x0 or y1 <= y0:
        return None
    count = np.zeros((y1 - y0, x1 - x0), np.int32)
    for m, r in zip(masks, rects):
        if m is None or r[2] <= r[0] or r[3] <= r[1]:
            continue
        m = np.asarray(m, np.uint8)  # as FiftyOne renders masks (and as the IoU kernels read them)
        if m.shape != (r[3] - r[1], r[2] - r[0]):
            from iou_audit.geometry.masks import _resize_like_fiftyone

            m = _resize_like_fiftyone(m, int(r[2] - r[0]), int(r[3] - r[1]))
        count[r[1] - y0:r[3] - y0, r[0] - x0:r[2] - x0] += m != 0
    keep = 2 * count >= len(masks)
    ys, xs = np.nonzero(keep)
    if len(ys) == 0:
        return None
    a, b, c, d = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = [float((x0 + c) / w), float((y0 + a) / h), float((x0 + d) / w), float((y0 + b) / h)]
    return keep[a:b, c:d], box


def consensus_labels(tables, ctab: pd.DataFrame, mem: pd.DataFrame, geometry: str = "boxes") -> pd.DataFrame:
    """One row per consensus object: sample_index, label, box (relative xyxy), confidence,
    members (label ids), n_annotators, mask (or None)."""
    found = ctab[ctab.n_present >= ctab.quorum]
    cl = found.cluster.to_numpy()
    boxes = fuse_boxes(mem, cl)
    iou = found.mean_iou.fillna(1.0).to_numpy()
    agreement = found.n_present.to_numpy() / np.maximum(found.n_covering.to_numpy(), 1) * iou
    sel = mem[np.isin(mem.cluster.to_numpy(), cl)].sort_values(["cluster", "annotator"])
    members = sel.groupby("cluster").label_id.apply(list).reindex(cl)
    masks = [None] * len(cl)
    if geometry == "masks":
        t0 = tables[0]
        by_cluster = {c: g for c, g in sel.groupby("cluster")}
        for i, c in enumerate(cl):
            g = by_cluster[c]
            ms = [tables[k].masks[r] for k, r in zip(g.annotator, g.row)]
            bs = np.array([tables[k].box[r] for k, r in zip(g.annotator, g.row)])
            s = int(found.sample_index.iloc[i])
            fused = majority_mask(ms, bs, (int(t0.width[s]), int(t0.height[s])))
            if fused is not None:
                masks[i], boxes[i] = fused[0], fused[1]
    return pd.DataFrame({
        "sample_index": found.sample_index.to_numpy(), "cluster": cl, "label": found.label.to_numpy(),
        "box": list(boxes), "confidence": np.clip(agreement, 0, 1), "members": members.to_numpy(),
        "n_annotators": found.n_present.to_numpy(), "mask": masks,
    })
