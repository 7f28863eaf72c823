"""One benchmark case: a FiftyOne dataset with noisy labels and simulated predictions, and the truth.

:func:`build_case` ``(source, seed)`` draws the annotators' errors and the detector's output
(:mod:`bench.label_errors.simulate`) and writes a new, non-persistent FiftyOne dataset with

- ``ground_truth``: the noisy labels (``fo.Detections``), each with the attribute ``annotator``
  (the simulated annotator of its image; every image has one, also in the sample field ``annotator``);
- ``predictions``: the simulated detector's output on the *clean* labels (with ``confidence``).

Nothing in the dataset tells which labels are wrong. The truth stays in :class:`Truth`:
``labels`` (a DataFrame indexed by the ``ground_truth`` label id: ``type`` = error type or
``"clean"``, ``sample_id``, ``annotator``, ``size``, ``occluded``, ``truncated`` of the object behind
it, ``detail``, and ``pair_id`` = for a ``duplicate``, the id of the correct label it duplicates) and
``dropped`` (one row per object whose label was removed: ``sample_id``, ``box`` relative xyxy,
``label``, ``size``).

Call :meth:`Case.close` (or use the case as a context manager) to delete the dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.label_errors import simulate as sim
from bench.label_errors.sources import load_source

GT_FIELD = "ground_truth"
PRED_FIELD = "predictions"


@dataclass
class Truth:
    """What the simulation did (see the module docstring)."""

    labels: pd.DataFrame
    dropped: pd.DataFrame
    annotator_rates: dict = field(default_factory=dict)  # annotator -> realised error rate on its objects


@dataclass
class Case:
    """A dataset to score and the truth to score it against."""

    source: str
    seed: int
    dataset: object  # fo.Dataset with GT_FIELD and PRED_FIELD
    truth: Truth
    map50: float  # the simulated detector's COCO AP50 against the clean labels
    detectable_dropped: float = float("nan")  # dropped objects some prediction covers at IoU >= 0.5: a ceiling
    gt_field: str = GT_FIELD
    pred_field: str = PRED_FIELD

    def close(self) -> None:
        """Delete the case's dataset."""
        if self.dataset is not None and not self.dataset.deleted:
            self.dataset.delete()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_case(source: str, seed: int, limit: int | None = None) -> Case:
    """The case of ``source`` (``"bccd"`` / ``"coco"``) and ``seed`` (see the module docstring).

    ``limit``: keep only the first ``limit`` images (for quick runs and tests; the size terciles and
    the allocation weights are still those of the whole source).

    Example:
        >>> with build_case("coco", 1) as case:                                  # doctest: +SKIP
        ...     case.dataset.count("ground_truth.detections"), case.truth.labels.type.value_counts()
    """
    import fiftyone as fo

    src = load_source(source)
    info = sim.object_info(src)
    noisy = sim.inject_errors(src, info, seed)
    pred = sim.simulate_detector(src, info, seed)
    map50 = sim.detector_map50(src, pred)
    S = src.num_samples if limit is None else min(limit, src.num_samples)

    ds = fo.Dataset()
    samples = [fo.Sample(filepath=str(src.filepaths[s]), annotator=str(noisy.image_annotator[s]),
                         metadata=fo.ImageMetadata(width=int(src.width[s]), height=int(src.height[s])))
               for s in range(S)]
    sample_ids = ds.add_samples(samples, progress=False)
    gt_values, pred_values, label_ids = [], [], []
    for s in range(S):
        dets = []
        for i in range(noisy.offsets[s], noisy.offsets[s + 1]):
            d = _detection(noisy.box[i], noisy.label[i], annotator=str(noisy.annotator[i]))
            dets.append(d)
            label_ids.append(d.id)
        gt_values.append(fo.Detections(detections=dets))
        pred_values.append(fo.Detections(detections=[
            _detection(pred.box[i], pred.label[i], confidence=float(pred.confidence[i]))
            for i in range(pred.offsets[s], pred.offsets[s + 1])]))
    ds.set_values(GT_FIELD, gt_values)
    ds.set_values(PRED_FIELD, pred_values)

    n = noisy.offsets[S]
    host = noisy.host[:n]
    known = host >= 0
    hinfo = lambda arr, fill: np.where(known, arr[np.maximum(host, 0)], fill)  # noqa: E731
    labels = pd.DataFrame({
        "sample_id": np.repeat(np.asarray(sample_ids, object), np.diff(noisy.offsets[:S + 1])),
        "type": noisy.error[:n], "annotator": noisy.annotator[:n], "label": noisy.label[:n],
        "size": hinfo(info.size, -1), "occluded": hinfo(info.occluded, False),
        "truncated": hinfo(info.truncated, False), "detail": noisy.detail[:n], "host": host,
    }, index=pd.Index(label_ids, name="label_id"))
    # a duplicate's pair: the clean label of the same object in the same image
    labels["pair_id"] = None
    dup = labels.index[labels["type"] == "duplicate"]
    clean_of_host = {(r.sample_id, r.host): lid for lid, r in labels[labels["type"] == "clean"].iterrows()}
    for lid in dup:
        r = labels.loc[lid]
        labels.at[lid, "pair_id"] = clean_of_host.get((r.sample_id, r.host))
    si = src.sample_index
    drop = noisy.dropped[si[noisy.dropped] < S] if len(noisy.dropped) else noisy.dropped
    dropped = pd.DataFrame({"sample_id": [sample_ids[si[i]] for i in drop],
                            "box": [src.box[i].copy() for i in drop], "label": src.label[drop],
                            "size": info.size[drop], "annotator": noisy.image_annotator[si[drop]]})
    rates = {}
    for a in sim.ANNOTATORS:
        objs = ((noisy.image_annotator[si] == a.name) & (si < S)).sum()
        errs = ((labels["annotator"] == a.name) & (labels["type"] != "clean")).sum() \
            + (dropped["annotator"] == a.name).sum()
        rates[a.name] = float(errs / objs) if objs else float("nan")
    from bench.label_errors.metrics import match_candidates

    psi = np.repeat(np.arange(src.num_samples), np.diff(pred.offsets))
    every_prediction = [(sample_ids[s], pred.box[i], 1.0) for i, s in enumerate(psi) if s < S]
    _, best = match_candidates(every_prediction, dropped)
    detectable = float(np.isfinite(best).mean()) if len(dropped) else float("nan")
    return Case(source, seed, ds, Truth(labels.drop(columns="host"), dropped, rates), map50, detectable)


def _detection(box, label, **attrs):
    import fiftyone as fo

    x0, y0, x1, y1 = (float(v) for v in box)
    return fo.Detection(label=str(label), bounding_box=[x0, y0, x1 - x0, y1 - y0], **attrs)
