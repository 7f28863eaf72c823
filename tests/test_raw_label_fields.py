"""iou_audit.table.raw_labels against FiftyOne's own write: the same labels written by
``set_values`` (label objects) and by ``write_label_fields`` (stored documents) give the same
schema and the same labels read back through FiftyOne; views, held samples and a type clash."""
from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest

from iou_audit.table.raw_labels import (
    RawLabelField,
    detection_doc,
    detections_doc,
    heatmap_doc,
    segmentation_doc,
    write_label_fields,
)


def _strip_ids(d):
    if isinstance(d, dict):
        return {k: _strip_ids(v) for k, v in d.items() if k not in ("_id", "id")}
    if isinstance(d, list):
        return [_strip_ids(x) for x in d]
    return d


def _masks(rng, i):
    return (rng.random((5 + i, 7)) > 0.5, rng.integers(0, 9, (12, 10)).astype(np.uint8),
            rng.integers(0, 255, (12, 10)).astype(np.uint8))


def test_write_label_fields_equals_set_values():
    rng = np.random.default_rng(0)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/x/{i}.png") for i in range(4)])
    ids = ds.values("id")
    objs = {"r": {}, "c": {}, "h": {}}
    raw = {"R": RawLabelField("Detections"), "C": RawLabelField("Segmentation"), "H": RawLabelField("Heatmap")}
    for i, sid in enumerate(ids):
        crop, seg, heat = _masks(rng, i)
        box = [0.1 * i, 0.2, 0.3, 0.25]
        objs["r"][sid] = fo.Detections(detections=[fo.Detection(label=f"{i} vs 2", bounding_box=box, mask=crop,
                                                                pixels=int(crop.sum()))] * (i % 3))
        raw["R"].docs[sid] = detections_doc([detection_doc(f"{i} vs 2", box, crop, pixels=int(crop.sum()))] * (i % 3))
        objs["c"][sid], raw["C"].docs[sid] = fo.Segmentation(mask=seg), segmentation_doc(seg)
        objs["h"][sid], raw["H"].docs[sid] = fo.Heatmap(map=heat, range=[0, 255]), heatmap_doc(heat, (0, 255))
    for name, values in objs.items():
        ds.set_values(name, values, key_field="id")
    assert write_label_fields(ds, raw) == {"samples": 4}
    schema = ds.get_field_schema(flat=True)
    for ours, theirs in (("R", "r"), ("C", "c"), ("H", "h")):
        mine = {k[len(ours):]: str(v) for k, v in schema.items() if k.split(".")[0] == ours}
        fos = {k[len(theirs):]: str(v) for k, v in schema.items() if k.split(".")[0] == theirs}
        assert mine == fos
    for sample in ds.iter_samples():
        for ours, theirs in (("R", "r"), ("C", "c"), ("H", "h")):
            assert _strip_ids(sample[ours].to_dict()) == _strip_ids(sample[theirs].to_dict())
        assert np.array_equal(sample.C.get_mask(), sample.c.get_mask())
        for d, e in zip(sample.R.detections, sample.r.detections):
            assert np.array_equal(d.mask, e.mask) and d.pixels == e.pixels
    ds.delete()


def test_write_label_fields_view_held_samples_and_type_clash():
    ds = fo.Dataset()
    held = [fo.Sample(filepath=f"/x/{i}.png", seg=fo.Segmentation(mask=np.zeros((2, 2), np.uint8))) for i in range(3)]
    ds.add_samples(held)
    view = ds.select([held[0].id, held[2].id])
    docs = RawLabelField("Segmentation", {s.id: segmentation_doc(np.full((2, 2), i, np.uint8))
                                          for i, s in enumerate(held)})
    before = held[1].last_modified_at
    assert write_label_fields(view, {"cons": docs}) == {"samples": 2}
    assert held[0].cons.get_mask().tolist() == [[0, 0], [0, 0]]  # held objects see the write
    assert held[2].cons.get_mask().tolist() == [[2, 2], [2, 2]]
    assert held[1].cons is None and ds[held[1].id].last_modified_at == before  # not in the view: untouched
    with pytest.raises(ValueError, match="'seg' exists and does not hold Heatmap"):
        write_label_fields(ds, {"seg": RawLabelField("Heatmap", {held[0].id: heatmap_doc(np.zeros((2, 2)), (0, 1))})})
    with pytest.raises(ValueError, match="not a FiftyOne label type"):
        write_label_fields(ds, {"x": RawLabelField("Sample", {})})
    assert ds[held[0].id].seg.mask.tolist() == [[0, 0], [0, 0]]
    ds.delete()
