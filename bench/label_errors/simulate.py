"""Noise model (six simulated annotators) and a simulated detector for the label-error benchmark.

Everything here is SIMULATED on real clean labels (:mod:`bench.label_errors.sources`), seeded, and
independent of how ``iou_audit`` scores labels.

Object attributes (per clean label, per source):

- size: tercile of ``sqrt(w * h)`` in pixels over the source's labels (:data:`SMALL`, :data:`MEDIUM`,
  :data:`LARGE`), so both sources have small objects (BCCD's platelets; COCO's small things);
- occluded: another label covers more than :data:`OCCLUDED_IOA` of its box (intersection / own area);
- truncated: the box touches the image border (within :data:`TRUNCATED_MARGIN`, relative).

Annotators (:data:`ANNOTATORS`): every image is labelled by one of six annotators, drawn uniformly.
Annotator ``a`` corrupts each object of its images with probability
``rate[a] * w / mean(w)`` (capped at 0.9), where the allocation weight ``w`` = :data:`SIZE_WEIGHT`
[size] x (1 + :data:`OCCLUDED_BOOST` if occluded) x (1 + :data:`TRUNCATED_BOOST` if truncated) and
``mean(w)`` is over the source, so about ``mean(rate)`` = 12.5 % of the objects get an error. The
error type is drawn from the annotator's mix (:data:`ANNOTATORS`), the ``dropped`` weight times
:data:`DROP_SIZE_FACTOR` [size] (small objects are dropped more), among the types possible for that
object (a class without look-alikes cannot be swapped; a geometry that cannot reach its IoU range
inside the image is redrawn). Error types (:data:`ERROR_TYPES`):

- ``spurious``: a label is added where there is no object: half "nothing there" (a box with the
  size of one of the image's labels, times U(0.7, 1.3), IoU <= 0.1 with every object, a class of
  the image), half "wrong region" (a box of the object's size and class whose IoU with it is in
  U(0.05, 0.3) and <= 0.3 with every object). The object itself keeps its correct label;
- ``subtle_loc``: the object's box is moved and/or rescaled to IoU U(0.70, 0.85) with the truth;
- ``bad_loc``: the same to IoU U(0.30, 0.70);
- ``edge``: one edge (of four, random) is moved by U(0.15, 0.45) of the box's extent across it,
  outwards or inwards (inwards where the image border blocks the outward move): IoU 0.55-0.87;
- ``swap``: the class becomes a look-alike (:func:`sources.coco_lookalikes`: same COCO
  supercategory; BCCD: :data:`sources.BCCD_LOOKALIKES`);
- ``duplicate``: a second label of the same class is added on the object, IoU U(0.75, 0.95) with
  its correct label (which stays, as a clean label);
- ``dropped``: the object's label is removed (the object is still there for the detector).

Moves and rescales reach an exact target IoU by bisection on the magnitude (in a random direction,
with a random mix of shift and scale), clipped to the image; the IoU after clipping is what lies in
the stated range.

Detector (:func:`simulate_detector`), run on the CLEAN labels: an object of size ``t`` is detected
with probability ``DETECTOR[source].recall[t]`` (times :data:`OCCLUDED_RECALL` if occluded and
:data:`TRUNCATED_RECALL` if truncated); its box corners get Gaussian noise of ``box_sigma[t]`` times
the box's width/height; confidence ~ Beta(``conf_ab[t]``); with ``p_confuse`` the class becomes a
look-alike (confidence ~ Beta(2, 4)); with ``p_duplicate`` a second, looser box at 0.6x the
confidence is added; each image gets Poisson(``background_rate`` x sqrt(objects)) background boxes
(confidence ~ Beta(1.5, 5), IoU <= 0.2 with every object). The per-source parameters were
calibrated on seeds 1-3 to mAP50 about 0.83 (BCCD) and 0.62 (COCO-100) against the clean labels
(COCO AP at IoU 0.5, measured by :func:`detector_map50`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.label_errors.sources import CleanSource

ERROR_TYPES = ("spurious", "subtle_loc", "bad_loc", "edge", "swap", "duplicate", "dropped")
#: IoU with the truth of each geometric error type (closed ranges)
IOU_RANGES = {"subtle_loc": (0.70, 0.85), "bad_loc": (0.30, 0.70), "duplicate": (0.75, 0.95),
              "wrong_region": (0.05, 0.30)}
EDGE_MOVE = (0.15, 0.45)
SMALL, MEDIUM, LARGE = 0, 1, 2
SIZE_NAMES = ("small", "medium", "large")
OCCLUDED_IOA = 0.25
TRUNCATED_MARGIN = 0.005
SIZE_WEIGHT = (1.5, 1.0, 0.7)
OCCLUDED_BOOST = 0.5
TRUNCATED_BOOST = 0.3
DROP_SIZE_FACTOR = (2.0, 1.0, 0.4)
MAX_ERROR_PROB = 0.9


@dataclass(frozen=True)
class Annotator:
    """One simulated annotator: its per-object error rate and its mix over :data:`ERROR_TYPES`."""

    name: str
    rate: float
    mix: tuple  # weights in ERROR_TYPES order


#: six annotators, from careful (4 %) to sloppy (21 %); mean rate 0.125
ANNOTATORS = (
    Annotator("annotator_1", 0.04, (0.10, 0.35, 0.05, 0.20, 0.05, 0.05, 0.20)),  # careful; subtle slips
    Annotator("annotator_2", 0.08, (0.15, 0.15, 0.15, 0.15, 0.15, 0.10, 0.15)),  # a bit of everything
    Annotator("annotator_3", 0.11, (0.05, 0.20, 0.30, 0.25, 0.05, 0.05, 0.10)),  # hasty boxes
    Annotator("annotator_4", 0.14, (0.10, 0.10, 0.10, 0.10, 0.35, 0.10, 0.15)),  # confuses classes
    Annotator("annotator_5", 0.17, (0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.40)),  # skips objects
    Annotator("annotator_6", 0.21, (0.25, 0.10, 0.10, 0.10, 0.10, 0.25, 0.10)),  # over-labels
)


@dataclass(frozen=True)
class DetectorParams:
    """Simulated detector of one source (per size tercile: small, medium, large)."""

    recall: tuple
    box_sigma: tuple
    conf_ab: tuple  # Beta (a, b) of a detected object's confidence, per size
    p_confuse: float
    p_duplicate: float
    background_rate: float


OCCLUDED_RECALL = 0.85
TRUNCATED_RECALL = 0.9
#: calibrated on seeds 1-3 to mAP50 ~0.83 (BCCD: 0.832 / 0.831 / 0.828) and ~0.62 (COCO-100: 0.616 / 0.619 /
#: 0.633); see the module docstring
DETECTOR = {
    "bccd": DetectorParams(recall=(0.84, 0.95, 0.98), box_sigma=(0.07, 0.05, 0.04),
                           conf_ab=((4, 3), (7, 2), (9, 1.5)), p_confuse=0.03, p_duplicate=0.04,
                           background_rate=0.35),
    "coco": DetectorParams(recall=(0.50, 0.77, 0.90), box_sigma=(0.11, 0.07, 0.05),
                           conf_ab=((2.5, 3), (5, 2.5), (8, 2)), p_confuse=0.06, p_duplicate=0.05,
                           background_rate=0.7),
}


@dataclass
class ObjectInfo:
    """Per clean label: size tercile, occluded, truncated."""

    size: np.ndarray  # (L,) int 0/1/2
    occluded: np.ndarray  # (L,) bool
    truncated: np.ndarray  # (L,) bool


def box_iou_one(b: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of ``others``.

    Example:
        >>> box_iou_one(np.array([0., 0, 2, 2]), np.array([[1., 0, 3, 2], [5, 5, 6, 6]])).round(4).tolist()
        [0.3333, 0.0]
    """
    others = np.asarray(others, float).reshape(-1, 4)
    ix = np.clip(np.minimum(b[2], others[:, 2]) - np.maximum(b[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(b[3], others[:, 3]) - np.maximum(b[1], others[:, 1]), 0, None)
    inter = ix * iy
    union = (b[2] - b[0]) * (b[3] - b[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def object_info(src: CleanSource) -> ObjectInfo:
    """Size tercile, occlusion and truncation of every clean label (see the module docstring)."""
    si = src.sample_index
    wh_px = (src.box[:, 2:] - src.box[:, :2]) * np.c_[src.width[si], src.height[si]]
    side = np.sqrt(np.prod(wh_px, axis=1))
    cuts = np.quantile(side, [1 / 3, 2 / 3]) if len(side) else np.zeros(2)
    size = np.searchsorted(cuts, side, side="right").astype(np.int64)
    occluded = np.zeros(len(side), bool)
    for s in range(src.num_samples):
        a, b = src.offsets[s], src.offsets[s + 1]
        if b - a < 2:
            continue
        bx = src.box[a:b]
        ix = np.clip(np.minimum(bx[:, None, 2], bx[None, :, 2]) - np.maximum(bx[:, None, 0], bx[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(bx[:, None, 3], bx[None, :, 3]) - np.maximum(bx[:, None, 1], bx[None, :, 1]), 0, None)
        ioa = ix * iy / np.maximum(np.prod(bx[:, 2:] - bx[:, :2], axis=1), 1e-12)[:, None]
        np.fill_diagonal(ioa, 0)
        occluded[a:b] = ioa.max(axis=1) > OCCLUDED_IOA
    m = TRUNCATED_MARGIN
    truncated = (src.box[:, :2] <= m).any(axis=1) | (src.box[:, 2:] >= 1 - m).any(axis=1)
    return ObjectInfo(size, occluded, truncated)


def _move(box: np.ndarray, direction: np.ndarray, t: float) -> np.ndarray:
    """``box`` shifted by ``t * direction[:2]`` of its size and scaled by ``exp(t * direction[2:])``."""
    w, h = box[2] - box[0], box[3] - box[1]
    c = (box[:2] + box[2:]) / 2 + t * direction[:2] * [w, h]
    half = np.array([w, h]) / 2 * np.exp(t * direction[2:])
    return np.r_[c - half, c + half].clip(0, 1)


def box_at_iou(box: np.ndarray, target: float, rng: np.random.Generator, tries: int = 20) -> np.ndarray | None:
    """A box at IoU ``target`` (+-0.005) with ``box``: a random mix of shift and scale, magnitude by
    bisection, clipped to the image; None when no direction reaches it inside the image.

    Example:
        >>> b = box_at_iou(np.array([.2, .2, .4, .5]), 0.75, np.random.default_rng(0))
        >>> round(float(box_iou_one(b, np.array([[.2, .2, .4, .5]]))[0]), 2)
        0.75
    """
    for _ in range(tries):
        shift = rng.normal(size=2)
        scale = rng.normal(size=2) * rng.uniform(0, 1.5)
        direction = np.r_[shift, scale] / np.linalg.norm(np.r_[shift, scale])
        lo, hi = 0.0, 4.0
        if box_iou_one(_move(box, direction, hi), box[None])[0] > target:
            continue
        for _ in range(50):
            mid = (lo + hi) / 2
            if box_iou_one(_move(box, direction, mid), box[None])[0] > target:
                lo = mid
            else:
                hi = mid
        out = _move(box, direction, (lo + hi) / 2)
        if abs(box_iou_one(out, box[None])[0] - target) <= 0.005 and (out[2:] - out[:2]).min() > 1e-4:
            return out
    return None


def move_edge(box: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``box`` with one edge moved by U(:data:`EDGE_MOVE`) of its extent, outwards unless the image
    border blocks that (then inwards); None for a box without extent on that axis (BCCD has a few).

    Example:
        >>> b = np.array([.2, .2, .4, .5]); e = move_edge(b, np.random.default_rng(1))
        >>> int((e != b).sum())
        1
    """
    edge = int(rng.integers(4))
    axis = edge % 2
    extent = box[2 + axis] - box[axis]
    if extent < 1e-4:
        return None
    d = rng.uniform(*EDGE_MOVE) * extent
    outward = -1.0 if edge < 2 else 1.0  # x0/y0 move left/up to grow, x1/y1 right/down
    out = box.copy()
    grown = box[edge] + outward * d
    if rng.random() < 0.5 and 0.0 <= grown <= 1.0:
        out[edge] = grown
    else:
        out[edge] = box[edge] - outward * d
    return out


@dataclass
class NoisyLabels:
    """The noisy labels of one case (flat rows, per-image offsets) and what happened to each object.

    ``error`` is the row's error type or ``"clean"``; ``host`` the clean row it came from (-1 for a
    "nothing there" spurious label); ``dropped`` the clean rows whose label was removed.
    """

    box: np.ndarray
    label: np.ndarray
    offsets: np.ndarray
    error: np.ndarray  # (N,) str
    host: np.ndarray  # (N,) int clean row, -1 when none
    annotator: np.ndarray  # (N,) str
    image_annotator: np.ndarray  # (S,) str
    dropped: np.ndarray  # clean rows removed
    detail: np.ndarray  # (N,) str: "nothing_there" / "wrong_region" for spurious, "" otherwise


def inject_errors(src: CleanSource, info: ObjectInfo, seed: int, annotators=ANNOTATORS) -> NoisyLabels:
    """Labels as the six simulated annotators deliver them (see the module docstring).

    Example:
        >>> from bench.label_errors.sources import CleanSource
        >>> src = CleanSource("t", np.array(["a"]), np.array([100.]), np.array([100.]), np.array([0, 2]),
        ...                   np.array([[.1, .1, .3, .3], [.5, .5, .8, .9]]), np.array(["x", "y"], object),
        ...                   ["x", "y"], {"x": ("y",), "y": ("x",)})
        >>> n = inject_errors(src, object_info(src), seed=0)
        >>> len(n.error) + len(n.dropped) >= 2
        True
    """
    rng = np.random.default_rng([seed, 17])
    S = src.num_samples
    si = src.sample_index
    image_ann = rng.integers(len(annotators), size=S)
    weight = np.asarray(SIZE_WEIGHT)[info.size] * (1 + OCCLUDED_BOOST * info.occluded) \
        * (1 + TRUNCATED_BOOST * info.truncated)
    weight = weight / max(weight.mean(), 1e-12)
    rates = np.array([a.rate for a in annotators])
    p_err = np.minimum(rates[image_ann[si]] * weight, MAX_ERROR_PROB)
    has_err = rng.random(len(si)) < p_err
    mixes = np.array([a.mix for a in annotators], float)
    drop_col = ERROR_TYPES.index("dropped")
    swap_col = ERROR_TYPES.index("swap")
    rows_box, rows_label, rows_err, rows_host, rows_ann, rows_detail = [], [], [], [], [], []
    dropped = []
    counts = np.zeros(S, np.int64)
    for s in range(S):
        a, b = src.offsets[s], src.offsets[s + 1]
        ann = annotators[image_ann[s]]
        objs = src.box[a:b]
        img_classes = sorted(set(src.label[a:b].tolist()))
        out = []  # (box, label, error, host, detail)
        for i in range(a, b):
            box, cls = src.box[i], src.label[i]
            if not has_err[i]:
                out.append((box, cls, "clean", i, ""))
                continue
            w = mixes[image_ann[s]].copy()
            w[drop_col] *= DROP_SIZE_FACTOR[info.size[i]]
            if not src.lookalikes.get(cls):
                w[swap_col] = 0.0
            done = False
            while not done and w.sum() > 0:
                k = int(rng.choice(len(w), p=w / w.sum()))
                kind = ERROR_TYPES[k]
                w[k] = 0.0  # if this type cannot be made here, draw among the others
                done = True
                if kind == "dropped":
                    dropped.append(i)
                elif kind == "swap":
                    alike = src.lookalikes[cls]
                    out.append((box, alike[int(rng.integers(len(alike)))], "swap", i, ""))
                elif kind in ("subtle_loc", "bad_loc"):
                    nb = box_at_iou(box, rng.uniform(*IOU_RANGES[kind]), rng)
                    done = nb is not None
                    if done:
                        out.append((nb, cls, kind, i, ""))
                elif kind == "edge":
                    nb = move_edge(box, rng)
                    done = nb is not None
                    if done:
                        out.append((nb, cls, "edge", i, ""))
                elif kind == "duplicate":
                    nb = box_at_iou(box, rng.uniform(*IOU_RANGES["duplicate"]), rng)
                    done = nb is not None
                    if done:
                        out += [(box, cls, "clean", i, ""), (nb, cls, "duplicate", i, "")]
                elif kind == "spurious":
                    nb, detail = _spurious(box, objs, rng)
                    host = i if detail == "wrong_region" else -1
                    done = nb is not None
                    if done:
                        label = cls if detail == "wrong_region" else img_classes[int(rng.integers(len(img_classes)))]
                        out += [(box, cls, "clean", i, ""), (nb, label, "spurious", host, detail)]
            if not done:
                out.append((box, cls, "clean", i, ""))
        order = rng.permutation(len(out))  # errors do not sit at a telltale position in the list
        for j in order:
            bx, cl, er, ho, de = out[j]
            rows_box.append(bx)
            rows_label.append(cl)
            rows_err.append(er)
            rows_host.append(ho)
            rows_ann.append(ann.name)
            rows_detail.append(de)
        counts[s] = len(out)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return NoisyLabels(np.array(rows_box, float).reshape(-1, 4), np.array(rows_label, object), offsets,
                       np.array(rows_err, object), np.array(rows_host, np.int64), np.array(rows_ann, object),
                       np.array([annotators[k].name for k in image_ann], object), np.array(dropped, np.int64),
                       np.array(rows_detail, object))


def _spurious(host_box, objs, rng):
    """``(box, detail)`` of a spurious label in an image with objects ``objs``."""
    if rng.random() < 0.5:
        lo, hi = IOU_RANGES["wrong_region"]
        for _ in range(5):
            nb = box_at_iou(host_box, rng.uniform(lo, hi), rng)
            if nb is not None and box_iou_one(nb, objs).max(initial=0) <= hi:
                return nb, "wrong_region"
    wh = (host_box[2:] - host_box[:2]) * rng.uniform(0.7, 1.3, 2)
    wh = np.minimum(wh, 0.95)
    for _ in range(100):
        xy = rng.random(2) * (1 - wh)
        nb = np.r_[xy, xy + wh]
        if box_iou_one(nb, objs).max(initial=0) <= 0.1:
            return nb, "nothing_there"
    return None, ""


@dataclass
class Predictions:
    """Simulated detections: flat rows with per-image offsets."""

    box: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    offsets: np.ndarray


def simulate_detector(src: CleanSource, info: ObjectInfo, seed: int, params: DetectorParams | None = None
                      ) -> Predictions:
    """The simulated detector's output on the clean labels of ``src`` (see the module docstring).

    Example:
        >>> from bench.label_errors.sources import CleanSource
        >>> src = CleanSource("bccd", np.array(["a"]), np.array([100.]), np.array([100.]), np.array([0, 1]),
        ...                   np.array([[.1, .1, .3, .3]]), np.array(["x"], object), ["x"], {"x": ()})
        >>> p = simulate_detector(src, object_info(src), 0, DetectorParams((1, 1, 1), (0, 0, 0), ((9, 1),) * 3, 0, 0, 0))
        >>> p.box.round(2).tolist(), p.label.tolist()
        ([[0.1, 0.1, 0.3, 0.3]], ['x'])
    """
    d = params or DETECTOR[src.name]
    rng = np.random.default_rng([seed, 29])
    boxes, labels, confs, counts = [], [], [], np.zeros(src.num_samples, np.int64)
    for s in range(src.num_samples):
        a, b = src.offsets[s], src.offsets[s + 1]
        n0 = len(boxes)
        for i in range(a, b):
            t = info.size[i]
            p = d.recall[t] * (OCCLUDED_RECALL if info.occluded[i] else 1.0) * (TRUNCATED_RECALL if info.truncated[i]
                                                                               else 1.0)
            if rng.random() >= p:
                continue
            bx = src.box[i]
            wh = np.r_[bx[2:] - bx[:2], bx[2:] - bx[:2]]
            conf = rng.beta(*d.conf_ab[t])
            cls = src.label[i]
            alike = src.lookalikes.get(cls, ())
            if alike and rng.random() < d.p_confuse:
                cls, conf = alike[int(rng.integers(len(alike)))], rng.beta(2, 4)
            boxes.append((bx + rng.normal(0, d.box_sigma[t], 4) * wh).clip(0, 1))
            labels.append(cls)
            confs.append(conf)
            if rng.random() < d.p_duplicate:
                boxes.append((bx + rng.normal(0, 2 * d.box_sigma[t], 4) * wh).clip(0, 1))
                labels.append(cls)
                confs.append(0.6 * conf)
        n_bg = rng.poisson(d.background_rate * np.sqrt(b - a)) if b > a else 0
        img_classes = sorted(set(src.label[a:b].tolist()))
        for _ in range(n_bg):
            j = a + int(rng.integers(b - a))
            wh = src.box[j, 2:] - src.box[j, :2]
            for _try in range(30):
                xy = rng.random(2) * np.maximum(1 - wh, 1e-3)
                nb = np.r_[xy, xy + wh].clip(0, 1)
                if box_iou_one(nb, src.box[a:b]).max(initial=0) <= 0.2:
                    boxes.append(nb)
                    labels.append(img_classes[int(rng.integers(len(img_classes)))])
                    confs.append(rng.beta(1.5, 5))
                    break
        counts[s] = len(boxes) - n0
    # a box must keep a positive extent after noise
    box = np.array(boxes, float).reshape(-1, 4)
    box[:, 2:] = np.maximum(box[:, 2:], box[:, :2] + 1e-4)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Predictions(box.clip(0, 1), np.array(labels, object), np.array(confs, float), offsets)


def detector_map50(src: CleanSource, pred: Predictions) -> float:
    """COCO AP at IoU 0.5 (all areas, 100 detections) of ``pred`` against the clean labels, by
    ``iou_audit``'s pycocotools-exact evaluation (``compute_prediction_audit(...).metrics["AP50"]``)."""
    from iou_audit.audits.predictions.core import compute_prediction_audit

    a = compute_prediction_audit(_table(src, pred.box, pred.label, pred.confidence, pred.offsets, "pred"),
                                 _table(src, src.box, src.label, None, src.offsets, "gt"), tide=False)
    return float(a.metrics["AP50"])


def _table(src: CleanSource, box, label, confidence, offsets, field):
    from iou_audit.table import LabelTable

    n = len(box)
    wh = np.c_[src.width, src.height]
    counts = np.diff(offsets)
    si = np.repeat(np.arange(src.num_samples), counts)
    return LabelTable(field=field, label_type="detections", sample_ids=np.array([str(s) for s in range(src.num_samples)],
                                                                                object),
                      filepaths=np.asarray(src.filepaths, object), width=wh[:, 0].astype(float),
                      height=wh[:, 1].astype(float), offsets=np.asarray(offsets, np.int64), sample_index=si,
                      label_id=np.array([f"{field}{i}" for i in range(n)], object), label=np.asarray(label, object),
                      box=np.asarray(box, float), confidence=(np.full(n, np.nan) if confidence is None
                                                               else np.asarray(confidence, float)),
                      iscrowd=np.zeros(n, bool))
