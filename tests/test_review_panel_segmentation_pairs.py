"""The review panel on a segmentation run of three fields: one confusion heatmap per pair of fields
(each equal to FiftyOne's ``evaluate_segmentations`` pixel confusion matrix of that pair), a click on
any of them selects the images numpy finds behind the cell, and the per-image counts behind the
clicks are kept between clicks but read again after a mask is edited (numpy on the edited masks)."""
from __future__ import annotations

import numpy as np
import pytest
from _panel_events import Event

import iou_audit.table.segmentation as seg_table
from iou_audit.audits.segmentation import audit_segmentation_agreement
from iou_audit.results.evidence.segmentation import confusion_chart_name

FIELDS = ["s0", "s1", "s2"]
VALUES = [0, 1, 2, 5]
KEY = "seg3"


@pytest.fixture
def three_fields(dataset, tmp_path):
    import fiftyone as fo

    rng = np.random.default_rng(8)
    samples = []
    for s in range(6):
        base = np.kron(rng.choice(VALUES, (5, 6)), np.ones((6, 6), int)).astype(np.uint8)
        maps = {f: np.where(rng.random(base.shape) < 0.15 * (i + 1), rng.choice(VALUES, base.shape), base)
                .astype(np.uint8) for i, f in enumerate(FIELDS)}
        samples.append(fo.Sample(filepath=str(tmp_path / f"{s}.jpg"),
                                 **{f: fo.Segmentation(mask=m) for f, m in maps.items()}))
    dataset.add_samples(samples)
    audit_segmentation_agreement(dataset, FIELDS, audit_key=KEY)
    return dataset


def _masks(ds):
    return {s.id: {f: s[f].get_mask() for f in FIELDS} for s in ds.select_fields(FIELDS)}


def test_one_heatmap_per_pair_and_clicks_on_each(three_fields, monkeypatch):
    ds = three_fields
    e = Event(ds, "select_audit", value=KEY)
    pairs = [("s0", "s1"), ("s0", "s2"), ("s1", "s2")]
    names = [confusion_chart_name(i) for i in range(3)]
    assert set(names) <= set(e.state["charts"])
    targets = {v: str(v) for v in VALUES}
    for (fa, fb), name in zip(pairs, names):
        (trace,) = e.data[name]
        assert trace["name"] == f"{fa} vs {fb}"
        cm = ds.evaluate_segmentations(fb, gt_field=fa, mask_targets=targets).pixel_confusion_matrix
        order = [VALUES.index(int(c)) for c in trace["y"]]
        assert trace["x"] == trace["y"] and (np.array(trace["customdata"]) == cm[np.ix_(order, order)]).all()

    masks = _masks(ds)
    # the third pair's busiest off-diagonal cell: the images numpy finds, most such pixels first
    (trace,) = e.data[names[2]]
    px = np.array(trace["customdata"])
    np.fill_diagonal(px, -1)
    r, k = np.unravel_index(px.argmax(), px.shape)
    ca, cb = trace["y"][r], trace["x"][k]
    click = Event(ds, "on_chart_click", e.state, path=names[2], x=cb, y=ca, z=0.1)
    per_image = {sid: int(((m["s1"] == int(ca)) & (m["s2"] == int(cb))).sum()) for sid, m in masks.items()}
    got = click.view.values("id")
    assert set(got) == {s for s, n in per_image.items() if n} and sum(per_image[s] for s in got) == px[r, k]
    assert [per_image[s] for s in got] == sorted((per_image[s] for s in got), reverse=True)

    # a second click reads no mask (the reader is not called); an edited mask is read again
    def no_read(*args, **kwargs):
        raise AssertionError("masks read again")

    monkeypatch.setattr(seg_table, "iter_segmentation_batches", no_read)
    again = Event(ds, "on_chart_click", e.state, path=names[2], x=cb, y=ca, z=0.1)
    assert again.view.values("id") == got
    monkeypatch.undo()
    sample = ds[got[-1]]
    edited = sample.s2.get_mask().copy()
    edited[(sample.s1.get_mask() == int(ca)) & (edited == int(cb))] = int(ca)  # that image has none left
    sample.s2.mask = edited
    sample.save()
    after = Event(ds, "on_chart_click", e.state, path=names[2], x=cb, y=ca, z=0.1)
    assert set(after.view.values("id")) == set(got) - {sample.id}
