"""Seeded, documented simulations for the prediction audit: label noise and an imperfect detector.

Everything here is **simulated** (for benchmarks, tests and the demo); nothing is a real model.

Label noise (:class:`LabelNoise`, :func:`inject_label_errors`): a fraction ``p_noisy_image`` of the
images gets errors of exactly one kind (so each kind can be scored on its own), drawn uniformly from
``KINDS``; such an image gets ``1 + Poisson(extra_errors)`` errors of that kind (capped by its labels):

- ``drop``: a label is removed (the object is still there for the detector);
- ``spurious``: a box is added where there is no object: size drawn from the image's labels, placed
  uniformly where it overlaps no true object by IoU > 0.1, class drawn uniformly;
- ``shift``: a box is translated by ``U(shift_min, shift_max)`` of its width and height, random signs
  (IoU with the object about 0.3-0.6);
- ``rescale``: a box is scaled about its centre by ``U(1.5, 1.9)`` or ``U(0.5, 0.65)`` per axis;
- ``swap``: the class is replaced by another class of the dataset;
- ``duplicate``: a second copy of a label, its corners jittered by 2 % of the box size.

Detector (:class:`Detector`, :func:`simulate_detections`), run on the *clean* labels: each object is
missed with ``p_miss``; otherwise it is "hard" with ``p_hard`` (confidence ~ Beta(2, 5), box noise
``2 * box_sigma``) or easy (confidence ~ Beta(9, 1.5)); box corners get Gaussian noise of
``box_sigma`` times the box size; with ``p_confuse`` the class is another one and the confidence
~ Beta(2, 4); with ``p_duplicate`` a second, looser box (noise ``2 * box_sigma``, half the confidence)
is added; each image also gets ``Poisson(background_rate)`` background boxes, confidence ~ Beta(1.5, 6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("drop", "spurious", "shift", "rescale", "swap", "duplicate")


@dataclass
class LabelNoise:
    p_noisy_image: float = 0.5
    extra_errors: float = 0.3
    shift_min: float = 0.25
    shift_max: float = 0.45
    kinds: tuple = KINDS


@dataclass
class Detector:
    p_miss: float = 0.04
    p_hard: float = 0.12
    box_sigma: float = 0.035
    p_confuse: float = 0.03
    p_duplicate: float = 0.05
    background_rate: float = 0.3


@dataclass
class Boxes:
    """Flat per-image boxes (relative xyxy), classes, confidences and offsets."""

    box: np.ndarray
    label: np.ndarray
    offsets: np.ndarray
    confidence: np.ndarray | None = None
    error: np.ndarray | None = None  # injected error kind per row ("" = clean), for noisy labels

    @property
    def sample_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


def _pack(per_image: list[list[tuple]], with_conf: bool, with_err: bool) -> Boxes:
    counts = np.array([len(x) for x in per_image], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows = [r for x in per_image for r in x]
    box = np.array([r[0] for r in rows], float).reshape(-1, 4)
    label = np.array([r[1] for r in rows], dtype=object)
    conf = np.array([r[2] for r in rows], float) if with_conf else None
    err = np.array([r[3] for r in rows], dtype=object) if with_err else None
    return Boxes(np.clip(box, 0.0, 1.0), label, offsets, conf, err)


def _iou_one(b: np.ndarray, others: np.ndarray) -> np.ndarray:
    if len(others) == 0:
        return np.zeros(0)
    ix = np.clip(np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1]), 0, None)
    inter = ix * iy
    a = (b[2] - b[0]) * (b[3] - b[1])
    ao = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(a + ao - inter, 1e-12)


def inject_label_errors(clean: Boxes, classes, noise: LabelNoise = LabelNoise(), seed: int = 0):
    """Noisy copy of ``clean`` labels and, per image, the injected kind ("" = clean image).

    Returns ``(noisy, image_kind, dropped)``: ``noisy.error`` marks each noisy row's injected kind;
    ``dropped`` lists ``(image, clean_row)`` of removed labels.

    Example:
        >>> c = Boxes(np.array([[.1, .1, .3, .3]]), np.array(["a"], object), np.array([0, 1]))
        >>> noisy, kind, dropped = inject_label_errors(c, ["a", "b"], LabelNoise(p_noisy_image=1, kinds=("swap",)))
        >>> noisy.label.tolist(), kind.tolist(), noisy.error.tolist()
        (['b'], ['swap'], ['swap'])
    """
    rng = np.random.default_rng(seed)
    classes = list(classes)
    S = len(clean.offsets) - 1
    image_kind = np.full(S, "", dtype=object)
    dropped = []
    out = []
    for s in range(S):
        a, b = clean.offsets[s], clean.offsets[s + 1]
        rows = [[clean.box[i].copy(), clean.label[i], np.nan, ""] for i in range(a, b)]
        if rng.random() < noise.p_noisy_image and len(rows):
            kind = noise.kinds[rng.integers(len(noise.kinds))]
            n_err = min(1 + rng.poisson(noise.extra_errors), len(rows))
            image_kind[s] = kind
            picks = rng.choice(len(rows), n_err, replace=False)
            sizes = clean.box[a:b, 2:] - clean.box[a:b, :2]
            if kind == "drop":
                dropped += [(s, a + int(i)) for i in picks]
                rows = [r for j, r in enumerate(rows) if j not in set(picks.tolist())]
            elif kind == "spurious":
                for _ in range(n_err):
                    wh = sizes[rng.integers(len(sizes))]
                    for _try in range(50):
                        xy = rng.random(2) * np.maximum(1 - wh, 1e-3)
                        bx = np.r_[xy, xy + wh]
                        if _iou_one(bx, clean.box[a:b]).max(initial=0) <= 0.1:
                            break
                    rows.append([bx, classes[rng.integers(len(classes))], np.nan, "spurious"])
            else:
                for i in picks:
                    r = rows[i]
                    bx = r[0]
                    w, h = bx[2] - bx[0], bx[3] - bx[1]
                    if kind == "shift":
                        d = rng.uniform(noise.shift_min, noise.shift_max, 2) * rng.choice([-1, 1], 2) * [w, h]
                        r[0] = bx + np.r_[d, d]
                    elif kind == "rescale":
                        f = rng.uniform(1.5, 1.9, 2) if rng.random() < 0.5 else rng.uniform(0.5, 0.65, 2)
                        c = (bx[:2] + bx[2:]) / 2
                        half = np.array([w, h]) * f / 2
                        r[0] = np.r_[c - half, c + half]
                    elif kind == "swap":
                        others = [k for k in classes if k != r[1]]
                        r[1] = others[rng.integers(len(others))]
                    elif kind == "duplicate":
                        rows.append([bx + rng.normal(0, 0.02, 4) * [w, h, w, h], r[1], np.nan, "duplicate"])
                        continue
                    r[3] = kind
        out.append([tuple(r) for r in rows])
    noisy = _pack(out, with_conf=False, with_err=True)
    return noisy, image_kind, dropped


def simulate_detections(clean: Boxes, classes, detector: Detector = Detector(), seed: int = 0) -> Boxes:
    """Predictions of a simulated imperfect detector on the clean labels (see module docstring).

    Example:
        >>> c = Boxes(np.array([[.1, .1, .3, .3]]), np.array(["a"], object), np.array([0, 1]))
        >>> p = simulate_detections(c, ["a"], Detector(p_miss=0, p_duplicate=0, background_rate=0))
        >>> len(p.box), bool(0 < p.confidence[0] < 1)
        (1, True)
    """
    rng = np.random.default_rng(seed + 1_000_003)
    classes = list(classes)
    d = detector
    out = []
    for s in range(len(clean.offsets) - 1):
        a, b = clean.offsets[s], clean.offsets[s + 1]
        rows = []
        for i in range(a, b):
            if rng.random() < d.p_miss:
                continue
            bx = clean.box[i]
            wh = np.r_[bx[2:] - bx[:2], bx[2:] - bx[:2]]
            hard = rng.random() < d.p_hard
            sigma = d.box_sigma * (2 if hard else 1)
            conf = rng.beta(2, 5) if hard else rng.beta(9, 1.5)
            label = clean.label[i]
            if rng.random() < d.p_confuse and len(classes) > 1:
                others = [k for k in classes if k != label]
                label, conf = others[rng.integers(len(others))], rng.beta(2, 4)
            rows.append((bx + rng.normal(0, sigma, 4) * wh, label, conf))
            if rng.random() < d.p_duplicate:
                rows.append((bx + rng.normal(0, 2 * sigma, 4) * wh, label, conf * 0.5))
        sizes = clean.box[a:b, 2:] - clean.box[a:b, :2]
        for _ in range(rng.poisson(d.background_rate) if b > a else 0):
            wh = sizes[rng.integers(len(sizes))]
            xy = rng.random(2) * np.maximum(1 - wh, 1e-3)
            rows.append((np.r_[xy, xy + wh], classes[rng.integers(len(classes))], rng.beta(1.5, 6)))
        out.append(rows)
    return _pack(out, with_conf=True, with_err=False)


def boxes_from_table(table) -> Boxes:
    """The geometry and classes of a LabelTable as :class:`Boxes`."""
    return Boxes(np.asarray(table.box, float), np.asarray(table.label, object), np.asarray(table.offsets, np.int64),
                 np.asarray(table.confidence, float))


def to_detections(boxes: Boxes) -> list:
    """Per-image ``fo.Detections`` (relative ``[x, y, w, h]``) for ``set_values``; errors as ``sim_error``."""
    import fiftyone as fo

    out = []
    for s in range(len(boxes.offsets) - 1):
        dets = []
        for i in range(boxes.offsets[s], boxes.offsets[s + 1]):
            x0, y0, x1, y1 = (float(v) for v in boxes.box[i])
            kw = {}
            if boxes.confidence is not None and np.isfinite(boxes.confidence[i]):
                kw["confidence"] = float(boxes.confidence[i])
            if boxes.error is not None and boxes.error[i]:
                kw["sim_error"] = str(boxes.error[i])
            dets.append(fo.Detection(label=str(boxes.label[i]), bounding_box=[x0, y0, x1 - x0, y1 - y0], **kw))
        out.append(fo.Detections(detections=dets))
    return out


def add_simulated_predictions(samples, gt_field: str = "ground_truth", pred_field: str = "sim_predictions",
                              detector: Detector = Detector(), seed: int = 0) -> int:
    """Write SIMULATED predictions of ``gt_field``'s objects into ``pred_field`` (bulk ``set_values``).

    The simulated detector sees the labels as they are (see module docstring); returns the number of
    predictions written.
    """
    from iou_audit.table import read_label_table

    gt = read_label_table(samples, gt_field, masks=False)
    classes = sorted(set(gt.label.tolist())) or ["object"]
    pred = simulate_detections(boxes_from_table(gt), classes, detector, seed)
    samples.set_values(pred_field, to_detections(pred))
    return len(pred.box)
