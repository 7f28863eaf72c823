"""Two annotators' Keypoints fields with planted disagreements, and the numpy oracle for them.

The second annotator is a copy of the first with some keypoints moved far (35 px) and some left
unlabeled on one side. The oracle is COCO's per-keypoint similarity
``exp(-d^2 / (2 area (2 sigma)^2))`` computed in numpy from the points FiftyOne stores, for the
skeleton pairs as planted (not as any audit matched them). Shared by the headless panel test and
the browser test.
"""
from __future__ import annotations

import fiftyone as fo
import numpy as np

from iou_audit.geometry.keypoints import COCO_SIGMAS

K = 17
AREA = 6000.0
W, H = 640, 480
FIELDS = ("ann_a", "ann_b")


def build(n_samples: int = 8, seed: int = 13) -> fo.Dataset:
    """A new dataset of ``n_samples`` images with 3 persons each in ``ann_a`` and ``ann_b``."""
    ds = fo.Dataset()
    ds.add_samples(planted_samples(n_samples, seed), progress=False)
    return ds


def planted_samples(n_samples: int = 8, seed: int = 13, filepath: str = "/nonexistent/kp_{i}.jpg") -> list:
    """``n_samples`` new ``fo.Sample``s (W x H images), 3 persons each in ``ann_a`` and ``ann_b``."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_samples):
        a_people, b_people = [], []
        for p in range(3):
            center = np.array([80 + 220 * p, 240.0])
            pts = center + rng.uniform(-40, 40, size=(K, 2))
            other = pts + rng.normal(0, 0.7, size=(K, 2))
            moved = rng.random(K) < 0.15
            other[moved] += rng.choice([-1, 1], size=(moved.sum(), 2)) * 35
            a_pts, b_pts = pts.copy(), other.copy()
            unlabeled = rng.random(K) < 0.08
            side = rng.random(K) < 0.5
            a_pts[unlabeled & side] = np.nan
            b_pts[unlabeled & ~side] = np.nan
            a_people.append(fo.Keypoint(label="person", points=[tuple(q) for q in (a_pts / [W, H]).tolist()],
                                        area=AREA))
            b_people.append(fo.Keypoint(label="person", points=[tuple(q) for q in (b_pts / [W, H]).tolist()],
                                        area=AREA))
        samples.append(fo.Sample(filepath=filepath.format(i=i), metadata=fo.ImageMetadata(width=W, height=H),
                                 ann_a=fo.Keypoints(keypoints=a_people), ann_b=fo.Keypoints(keypoints=b_people)))
    return samples


def pairs(ds) -> list[dict]:
    """Per planted pair: the sample id, both label ids, the (K,) similarity (NaN where a side lacks
    the point) and where only one side labels the point, read back from the database."""
    out = []
    for s in ds.exists(FIELDS[0]).select_fields(list(FIELDS)):
        for a, b in zip(s.ann_a.keypoints, s.ann_b.keypoints):
            pa, pb = np.array(a.points, float) * [W, H], np.array(b.points, float) * [W, H]
            d2 = ((pa - pb) ** 2).sum(axis=1)
            sim = np.exp(-d2 / (2 * AREA * (2 * COCO_SIGMAS) ** 2))
            out.append({"sample": s.id, "ids": (a.id, b.id), "sim": sim,
                        "one_side": np.isnan(pa).any(axis=1) ^ np.isnan(pb).any(axis=1)})
    return out


def behind(planted_pairs: list[dict], k: int, point_similarity: float = 0.5) -> list[dict]:
    """The pairs where keypoint ``k`` disagrees (similarity below ``point_similarity``) or only one
    side labels it: what a click on that keypoint's bar must show."""
    return [p for p in planted_pairs if p["one_side"][k] or p["sim"][k] < point_similarity]


def shown(view) -> dict[str, set[str]]:
    """``{field: keypoint label ids}`` visible in a view."""
    return {f: {i for ids in view.values(f"{f}.keypoints.id") for i in (ids or [])} for f in FIELDS}
