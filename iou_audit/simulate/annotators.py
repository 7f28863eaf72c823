"""SIMULATED extra annotators (for the demo, tests and benchmarks): noisy copies of a real label field.

Nothing here is a real person's work: fields are named ``sim_annotator_<x>`` and every label carries
``sim_noise`` (what was done to it) and ``sim_source_id`` (the label it was copied from, "" for an
invented box), so any audit result can be checked against the truth.

Noise model (one seeded ``numpy.random.Generator`` per annotator; all draws independent per label):
- missed: each source label is dropped with ``p_miss``;
- class swap: a kept label gets another class of the field (uniform) with ``p_swap``;
- jitter: every kept box edge moves by ``N(0, sigma_edge)`` times the box's width (left/right)
  or height (top/bottom): ordinary drawing imprecision, IoU stays high (sigma 0.03 -> ~0.9);
- sloppy edge: with ``p_sloppy`` one edge (uniform) moves outwards by ``U(0.3, 0.5)`` of the box
  size: the same object drawn carelessly (IoU ~0.7), told apart from a different object by the
  audit's edge offsets;
- extra boxes: each sample gets ``Poisson(extra_rate)`` invented boxes, size copied from a random
  label of the sample (or 10% of the image), placed uniformly so they overlap no source box by
  IoU > 0.1 (20 tries, else dropped), class uniform.
Boxes are clipped to the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iou_audit import fiftyone_private as fop
from iou_audit.geometry.boxes import box_iou


@dataclass
class AnnotatorNoise:
    """Parameters of one simulated annotator (see the module docstring)."""

    p_miss: float = 0.08
    p_swap: float = 0.05
    sigma_edge: float = 0.03
    p_sloppy: float = 0.05
    sloppy_range: tuple = (0.3, 0.5)
    extra_rate: float = 0.25


def simulate_annotator(offsets, boxes, labels, noise: AnnotatorNoise, seed: int, classes=None) -> dict:
    """One simulated annotator from a source table (relative xyxy ``boxes``, per-sample ``offsets``).

    Returns columns ``sample_index, box, label, noise, source_row`` (-1 for invented boxes).

    Example: no noise at all copies the source:
        >>> out = simulate_annotator(np.array([0, 1]), np.array([[.1, .1, .3, .3]]), np.array(["cat"]),
        ...                          AnnotatorNoise(0, 0, 0, 0, (0.3, 0.5), 0), seed=0)
        >>> out["box"].tolist(), out["noise"].tolist()
        ([[0.1, 0.1, 0.3, 0.3]], ['clean'])
    """
    rng = np.random.default_rng(seed)
    offsets = np.asarray(offsets, np.int64)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    labels = np.asarray(labels, dtype=object)
    classes = np.array(sorted(set(labels.tolist()) if classes is None else classes), dtype=object)
    n = len(boxes)
    sample = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    keep = rng.random(n) >= noise.p_miss
    out_box = boxes.copy()
    size = np.c_[boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]]
    scale = np.c_[size[:, 0], size[:, 1], size[:, 0], size[:, 1]]
    out_box += rng.normal(0, noise.sigma_edge, (n, 4)) * scale
    kind = np.full(n, "clean", dtype=object)
    if noise.sigma_edge > 0:
        kind[:] = "jitter"
    sloppy = rng.random(n) < noise.p_sloppy
    edge = rng.integers(0, 4, n)
    amount = rng.uniform(*noise.sloppy_range, n) * scale[np.arange(n), edge]
    out_box[np.flatnonzero(sloppy), edge[sloppy]] += np.where(edge[sloppy] < 2, -1, 1) * amount[sloppy]
    kind[sloppy] = "sloppy_edge"
    out_label = labels.copy()
    swap = (rng.random(n) < noise.p_swap) & (len(classes) > 1)
    for i in np.flatnonzero(swap):
        out_label[i] = rng.choice(classes[classes != labels[i]])
    kind[swap] = "class_swap"
    rows = np.flatnonzero(keep)
    extra = _extras(rng, offsets, boxes, noise.extra_rate, classes)
    return {
        "sample_index": np.r_[sample[rows], extra["sample_index"]].astype(np.int64),
        "box": np.clip(np.r_[out_box[rows], extra["box"]].reshape(-1, 4), 0, 1),
        "label": np.r_[out_label[rows], extra["label"]].astype(object),
        "noise": np.r_[kind[rows], np.full(len(extra["label"]), "extra", dtype=object)],
        "source_row": np.r_[rows, np.full(len(extra["label"]), -1)].astype(np.int64),
        "missed_rows": np.flatnonzero(~keep),
    }


def _extras(rng, offsets, boxes, rate, classes) -> dict:
    counts = rng.poisson(rate, len(offsets) - 1) if rate > 0 else np.zeros(len(offsets) - 1, int)
    s_idx, out_b, out_l = [], [], []
    for s in np.flatnonzero(counts):
        own = boxes[offsets[s]:offsets[s + 1]]
        for _ in range(counts[s]):
            if len(own):
                w, h = np.diff(own[rng.integers(len(own))].reshape(2, 2), axis=0)[0]
            else:
                w = h = 0.1
            for _try in range(20):
                x, y = rng.uniform(0, max(1 - w, 1e-6)), rng.uniform(0, max(1 - h, 1e-6))
                cand = np.array([[x, y, x + w, y + h]])
                if not len(own) or box_iou(cand, own).max() <= 0.1:
                    s_idx.append(s), out_b.append(cand[0]), out_l.append(rng.choice(classes) if len(classes) else "object")
                    break
    return {"sample_index": np.array(s_idx, np.int64), "box": np.array(out_b, float).reshape(-1, 4),
            "label": np.array(out_l, dtype=object)}


def add_simulated_annotators(samples, source_field: str = "ground_truth", names=("sim_annotator_b", "sim_annotator_c"),
                             noise: AnnotatorNoise | None = None, seed: int = 0, overwrite: bool = False) -> dict:
    """Write simulated annotators as new Detections fields (one bulk ``set_values`` each).

    Returns ``{name: simulate_annotator output + "source_ids"}`` (the truth, for checking audits).
    Refuses to overwrite an existing field unless ``overwrite`` (and then only ``sim_`` fields).
    """
    import fiftyone as fo

    from iou_audit.table import read_label_table

    noise = noise or AnnotatorNoise()
    table = read_label_table(samples, source_field, masks=False)
    dataset = fop.source_dataset(samples)
    truth = {}
    for k, name in enumerate(names):
        if not name.startswith("sim_"):
            raise ValueError(f"simulated annotator fields must start with 'sim_' to say what they are, got {name!r}")
        if dataset.get_field(name) is not None:
            if not overwrite:
                raise ValueError(f"field {name!r} exists; pass overwrite=True to replace the simulated annotator")
            dataset.delete_sample_field(name)
        sim = simulate_annotator(table.offsets, table.box, table.label, noise, seed=seed * 1000 + k)
        src_ids = np.where(sim["source_row"] >= 0, table.label_id[np.maximum(sim["source_row"], 0)], "")
        per_sample = [[] for _ in range(len(table.sample_ids))]
        for s, b, lab, kind, src in zip(sim["sample_index"], sim["box"], sim["label"], sim["noise"], src_ids):
            per_sample[s].append(fo.Detection(label=str(lab), bounding_box=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                              sim_noise=str(kind), sim_source_id=str(src)))
        samples.set_values(name, {sid: fo.Detections(detections=d) for sid, d in zip(table.sample_ids, per_sample)},
                           key_field="id")
        sim["source_ids"] = src_ids
        sim["missed_ids"] = table.label_id[sim["missed_rows"]]
        truth[name] = sim
    return truth
