"""iou_audit.compute_ious on FiftyOne labels against independent oracles.

- ``fiftyone.utils.iou.compute_ious`` (boxes, filled polylines, masks whose shape equals their box
  in pixels with ``use_masks=True, tolerance=None``);
- pycocotools ``mask.iou`` on RLEs, with iscrowd: synthetic full canvases, and the real COCO
  val2014 ground truth and fake segm results in ../shared/data (crowd RLEs included);
- FiftyOne's renderer ``Detection.to_segmentation`` for masks of other sizes than their box, where
  FiftyOne's own compute_ious approximates (its error is measured here and documented in
  ``iou_audit.labels``).
"""
import json

import fiftyone as fo
import fiftyone.utils.iou as foui
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from iou_audit.labels import compute_ious, infer_frame_size

LABELS = ["cat", "dog", "car"]


def fo_crowd(iscrowd):
    """FiftyOne 1.22's compute_ious breaks on an attribute *name* (its lambda captures itself):
    hand it the equivalent function."""
    if isinstance(iscrowd, str):
        return lambda label: bool(label.get_attribute_value(iscrowd, False))
    return iscrowd


def test_fiftyone_iscrowd_name_is_broken_upstream():
    """Documents why fo_crowd exists; if FiftyOne fixes this, fo_crowd can go."""
    det = fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2], iscrowd=True)
    with pytest.raises(TypeError, match="attribute name must be string"):
        foui.compute_ious([det], [det], iscrowd="iscrowd")
    assert compute_ious([det], [det], iscrowd="iscrowd").tolist() == [[1.0]]


def random_detections(rng, n, crowd_rate=0.0):
    dets = []
    for _ in range(n):
        w, h = rng.uniform(0.05, 0.5, size=2)
        x, y = rng.uniform(0.1, 0.6, size=2)
        dets.append(fo.Detection(label=str(rng.choice(LABELS)), bounding_box=[x, y, w, h],
                                 iscrowd=bool(rng.random() < crowd_rate)))
    return dets


@pytest.mark.parametrize("classwise", [False, True])
def test_boxes_match_fiftyone(classwise):
    rng = np.random.default_rng(1 + classwise)
    for _ in range(5):
        preds, gts = random_detections(rng, 15), random_detections(rng, 12, crowd_rate=0.3)
        for iscrowd in (None, "iscrowd", lambda g: g.label == "dog"):
            expected = foui.compute_ious(preds, gts, iscrowd=fo_crowd(iscrowd), classwise=classwise)
            ours = compute_ious(preds, gts, iscrowd=iscrowd, classwise=classwise)
            np.testing.assert_allclose(ours, expected, atol=1e-12, rtol=0)
        assert (expected > 0).sum() > 3
    same = compute_ious(preds, preds)  # preds is gts: FiftyOne's symmetric case
    np.testing.assert_allclose(same, foui.compute_ious(preds, preds), atol=1e-12)


def pixel_mask_detections(rng, width, height, n, crowd_rate=0.0):
    """Detections with integer pixel boxes (clustered) and masks of exactly their box's pixel size."""
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    dets, placed = [], []
    for _ in range(n):
        w, h = int(rng.integers(2, width // 3)), int(rng.integers(2, height // 3))
        x = int(np.clip(cx + rng.normal(0, width / 8) - w / 2, 0, width - w))
        y = int(np.clip(cy + rng.normal(0, height / 8) - h / 2, 0, height - h))
        mask = rng.random((h, w)) < rng.uniform(0.3, 0.9)
        dets.append(fo.Detection(label=str(rng.choice(LABELS)),
                                 bounding_box=[x / width, y / height, w / width, h / height],
                                 mask=mask, iscrowd=bool(rng.random() < crowd_rate)))
        placed.append((x, y, w, h, mask))
    return dets, placed


def rles(placed, width, height):
    out = []
    for x, y, w, h, mask in placed:
        canvas = np.zeros((height, width), np.uint8)
        canvas[y:y + h, x:x + w] = mask
        out.append(mask_utils.encode(np.asfortranarray(canvas)))
    return out


@pytest.mark.parametrize("width,height", [(64, 48), (640, 480), (333, 517)])
def test_pixel_sized_masks_match_fiftyone_and_pycocotools(width, height):
    rng = np.random.default_rng(width)
    overlapping = 0
    for _ in range(3):
        preds, p_placed = pixel_mask_detections(rng, width, height, 8)
        gts, g_placed = pixel_mask_detections(rng, width, height, 7, crowd_rate=0.4)
        for classwise in (False, True):
            expected = foui.compute_ious(preds, gts, use_masks=True, tolerance=None, classwise=classwise)
            ours = compute_ious(preds, gts, use_masks=True, frame_size=(width, height), classwise=classwise)
            np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)
        # without frame_size the frame is inferred from mask and box sizes, as FiftyOne does
        plain = foui.compute_ious(preds, gts, use_masks=True, tolerance=None)
        np.testing.assert_allclose(compute_ious(preds, gts, use_masks=True), plain, atol=1e-6)
        # crowd: FiftyOne's dense mode ignores iscrowd, so pycocotools is the oracle
        crowd = np.array([g.iscrowd for g in gts], np.uint8)
        coco = np.asarray(mask_utils.iou(rles(p_placed, width, height), rles(g_placed, width, height), crowd))
        ours = compute_ious(preds, gts, iscrowd="iscrowd", use_masks=True, frame_size=(width, height))
        np.testing.assert_allclose(ours, coco, atol=1e-6, rtol=0)
        overlapping += int((coco > 0).sum())
    assert overlapping > 5


def ellipse_mask(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1


@pytest.mark.parametrize("mask_shapes", ["28x28", "random"])
def test_masks_of_other_sizes_vs_fiftyone(mask_shapes):
    """Masks stored at another resolution than their box (28 x 28 as Mask R-CNN outputs, or random
    8-80 px sides): FiftyOne's renderer ``to_segmentation`` is the truth we match exactly; FiftyOne's
    compute_ious approximates it. Its error is printed (run with -s); iou_audit.labels quotes it."""
    rng = np.random.default_rng(0 if mask_shapes == "28x28" else 1)
    width, height = 640, 480
    errors, raised, overlapping = [], 0, 0
    for group in range(12):
        cx, cy = rng.uniform(0.3, 0.7, size=2)
        dets = []
        for _ in range(8):
            w, h = rng.uniform(0.05, 0.4, size=2)
            x = float(np.clip(cx + rng.normal(0, 0.08) - w / 2, 0, 1 - w))
            y = float(np.clip(cy + rng.normal(0, 0.08) - h / 2, 0, 1 - h))
            shape = (28, 28) if mask_shapes == "28x28" else tuple(rng.integers(8, 81, size=2))
            mask = ellipse_mask(*shape)
            if group % 3 == 0:
                mask &= rng.random(shape) < 0.7  # ragged masks too
            dets.append(fo.Detection(label="a", bounding_box=[x, y, w, h], mask=mask))
        frames = [d.to_segmentation(frame_size=(width, height)).mask > 0 for d in dets]
        inter = np.array([[np.count_nonzero(a & b) for b in frames] for a in frames])
        areas = inter.diagonal()
        union = areas[:, None] + areas[None, :] - inter
        truth = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
        ours = compute_ious(dets, dets, use_masks=True, frame_size=(width, height))
        np.testing.assert_allclose(ours, truth, atol=1e-12, rtol=0)
        for i, j in zip(*np.nonzero(np.triu(truth, 1))):
            overlapping += 1
            try:
                fo_iou = foui.compute_ious([dets[i]], [dets[j]], use_masks=True, tolerance=None)[0, 0]
            except ValueError:  # FiftyOne's rounded corners may not fit the mask it pastes
                raised += 1
                continue
            errors.append(abs(fo_iou - truth[i, j]))
    errors = np.array(errors)
    print(f"\n{mask_shapes} masks, FiftyOne vs rendered truth on {overlapping} overlapping pairs: "
          f"{raised} raised; |error| median {np.median(errors):.4f}, "
          f"p95 {np.percentile(errors, 95):.4f}, max {errors.max():.4f}")
    assert overlapping > 50
    assert errors.max() > 0 or raised > 0  # FiftyOne does approximate here (else drop the note)


def star_polygon(rng, cx, cy, r):
    """A simple (valid) polygon: star-shaped around its centre, no angular gap reaching pi."""
    n = int(rng.integers(4, 11))
    angles = 2 * np.pi * (np.arange(n) + rng.uniform(0, 1, size=n)) / n
    radii = rng.uniform(0.3, 1.0, size=len(angles)) * r
    return [[float(cx + a * np.cos(t)), float(cy + a * np.sin(t))] for a, t in zip(radii, angles)]


def random_polylines(rng, n, crowd_rate=0.0):
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.25)
        shapes = [star_polygon(rng, cx, cy, r)]
        if rng.random() < 0.3:  # a second, separate part (e.g. an occluded object)
            shapes.append(star_polygon(rng, cx + 2.5 * r, cy, r / 3))
        out.append(fo.Polyline(label=str(rng.choice(LABELS)), points=shapes, closed=True, filled=True,
                               iscrowd=bool(rng.random() < crowd_rate)))
    return out


@pytest.mark.parametrize("classwise", [False, True])
def test_filled_polylines_match_fiftyone(classwise):
    rng = np.random.default_rng(7 + classwise)
    positive = 0
    for _ in range(4):
        preds, gts = random_polylines(rng, 10), random_polylines(rng, 9, crowd_rate=0.3)
        for iscrowd in (None, "iscrowd"):
            expected = foui.compute_ious(preds, gts, iscrowd=fo_crowd(iscrowd), classwise=classwise)
            ours = compute_ious(preds, gts, iscrowd=iscrowd, classwise=classwise)
            np.testing.assert_allclose(ours, expected, atol=1e-9, rtol=0)
        np.testing.assert_allclose(compute_ious(preds, gts, use_boxes=True),
                                   foui.compute_ious(preds, gts, use_boxes=True), atol=1e-12)
        positive += int((expected > 0).sum())
    assert positive > 5


def test_coco_val2014_segm_results_match_pycocotools(shared_data):
    """Real data: COCO ground truth (polygons and crowd RLEs) vs the cocoapi fake segm results.

    Every mask is cropped to its tight pixel box, as FiftyOne stores instance masks; pycocotools
    on the original full-image RLEs is the oracle (iscrowd included)."""
    root = shared_data / "coco-val2014-100"
    gt = json.loads((root / "instances_val2014_100.json").read_text())
    dt = json.loads((root / "instances_val2014_fakesegm100_results.json").read_text())
    images = {im["id"]: im for im in gt["images"]}
    by_image = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], ([], []))[0].append(a)
    for d in dt:
        if d["image_id"] in by_image:
            by_image[d["image_id"]][1].append(d)

    def rle_of(seg, h, w):
        if isinstance(seg, list):
            return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        return mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg

    def detection(rle, h, w, **attrs):
        full = mask_utils.decode(rle).astype(bool)
        ys, xs = np.nonzero(full)
        if len(xs) == 0:
            return fo.Detection(bounding_box=[0, 0, 0, 0], mask=np.zeros((0, 0), bool), **attrs)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        return fo.Detection(bounding_box=[x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
                            mask=full[y0:y1, x0:x1], **attrs)

    checked, crowd_pairs, batch = 0, 0, []
    for image_id, (anns, dets) in sorted(by_image.items()):
        if not dets:
            continue
        h, w = images[image_id]["height"], images[image_id]["width"]
        g_rles = [rle_of(a["segmentation"], h, w) for a in anns]
        d_rles = [rle_of(d["segmentation"], h, w) for d in dets]
        crowd = np.array([a["iscrowd"] for a in anns], np.uint8)
        expected = np.asarray(mask_utils.iou(d_rles, g_rles, crowd))
        gts = [detection(r, h, w, iscrowd=bool(c)) for r, c in zip(g_rles, crowd)]
        preds = [detection(r, h, w) for r in d_rles]
        ours = compute_ious(preds, gts, iscrowd="iscrowd", use_masks=True, frame_size=(w, h))
        np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0, err_msg=f"image {image_id}")
        checked += int((expected > 0).sum())
        crowd_pairs += int((expected[:, crowd.astype(bool)] > 0).sum())
        batch.append((preds, gts, (w, h), expected))
    assert checked > 100 and crowd_pairs > 0
    # The same, all images in one batched call (the layout the audits use).
    from iou_audit.geometry.boxes import xywh_to_xyxy
    from iou_audit.geometry.masks import batched_cropped_mask_iou

    def table(objs):
        masks = [o.mask for objs_ in objs for o in objs_]
        boxes = xywh_to_xyxy(np.array([o.bounding_box for objs_ in objs for o in objs_], float))
        return masks, boxes, np.concatenate([[0], np.cumsum([len(x) for x in objs])])

    m1, b1, off1 = table([p for p, _, _, _ in batch])
    m2, b2, off2 = table([g for _, g, _, _ in batch])
    crowd2 = np.array([g.iscrowd for _, gs, _, _ in batch for g in gs])
    values, pair_off = batched_cropped_mask_iou(m1, b1, off1, m2, b2, off2,
                                                np.array([size for *_, size, _ in batch]), crowd2)
    for s, (_, _, _, expected) in enumerate(batch):
        got = values[pair_off[s]:pair_off[s + 1]].reshape(expected.shape)
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_empty_inputs_and_errors():
    det = fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2])
    assert compute_ious([], [det]).shape == (0, 1)
    assert compute_ious([det], None).shape == (1, 0)
    with pytest.raises(ValueError, match=r"preds\[0\] \(id .*\) has no mask"):
        compute_ious([det], [det], use_masks=True, frame_size=(10, 10))
    with pytest.raises(ValueError, match="mixes label types"):
        compute_ious([det, fo.Polyline(points=[[[0, 0], [1, 0], [1, 1]]], filled=True)], [det])
    with pytest.raises(ValueError, match="Keypoint"):
        compute_ious([fo.Keypoint(points=[[0.1, 0.1]])], [fo.Keypoint(points=[[0.1, 0.1]])])
    with pytest.raises(ValueError, match="open polylines"):
        line = fo.Polyline(points=[[[0, 0], [1, 1]]], filled=False)
        compute_ious([line], [line])
    with pytest.raises(ValueError, match="needs frame_size"):
        compute_ious([det], [det], metric="diou")
    with pytest.raises(ValueError, match="only available for boxes"):
        m = fo.Detection(bounding_box=[0.1, 0.1, 0.2, 0.2], mask=np.ones((2, 2), bool))
        compute_ious([m], [m], use_masks=True, metric="giou")
    # masks implying different frames need an explicit frame_size
    a = fo.Detection(bounding_box=[0.0, 0.0, 0.5, 0.5], mask=np.ones((5, 5), bool))
    b = fo.Detection(bounding_box=[0.0, 0.0, 0.5, 0.5], mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="different frame sizes"):
        compute_ious([a], [b], use_masks=True)
    assert compute_ious([a], [b], use_masks=True, frame_size=(10, 10)).tolist() == [[1.0]]
    assert infer_frame_size([np.ones((5, 5))], np.array([[0.0, 0.0, 0.5, 0.5]])) == (10, 10)


def test_diou_uses_pixels():
    a = fo.Detection(bounding_box=[0.0, 0.0, 0.5, 0.5])
    b = fo.Detection(bounding_box=[0.5, 0.0, 0.5, 0.5])
    # In a 200 x 100 frame the boxes are [0, 0, 100, 50] and [100, 0, 200, 50]: IoU 0, centre
    # distance 100, enclosing diagonal sqrt(200^2 + 50^2): DIoU = -100^2 / (200^2 + 50^2).
    got = compute_ious([a], [b], metric="diou", frame_size=(200, 100))
    assert got[0, 0] == pytest.approx(-(100**2) / (200**2 + 50**2), abs=1e-12)


def test_coco_imported_by_fiftyone_with_round_placement(shared_data, tmp_path, dataset):
    """FiftyOne's own COCO importer crops masks at rounded box corners: rounding="round" places them
    back exactly (pycocotools on the original annotations is the oracle), the default to_segmentation
    placement does not. Images are empty placeholder files: no pixels are needed."""
    root = shared_data / "coco-val2014-100"
    gt = json.loads((root / "instances_val2014_100.json").read_text())
    for im in gt["images"]:
        (tmp_path / im["file_name"]).touch()
    ds = dataset
    ds.add_dir(dataset_type=fo.types.COCODetectionDataset, data_path=str(tmp_path),
               labels_path=str(root / "instances_val2014_100.json"), label_types=["segmentations"],
               label_field="gt", include_id=True, progress=False)
    images = {im["id"]: im for im in gt["images"]}
    per_image = {}
    for a in gt["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    exact_pairs, floor_errors = 0, []
    for coco_id, dets in zip(ds.values("gt_coco_id"), ds.values("gt_segmentations")):
        dets = dets.detections if dets else []
        if not dets:
            continue
        w, h = images[coco_id]["width"], images[coco_id]["height"]
        anns = per_image[coco_id]
        assert len(anns) == len(dets)
        rles = []
        for det, a in zip(dets, anns):  # the importer keeps the file's order: check it
            np.testing.assert_allclose(det.bounding_box, np.array(a["bbox"]) / [w, h, w, h])
            seg = a["segmentation"]
            rles.append(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list)
                        else mask_utils.frPyObjects(seg, h, w))
        # Objects whose pixels stick out of their rounded box lost them in the import: skip those
        # (all crowd RLEs: COCO's crowd boxes are one pixel short of their masks).
        whole = np.array([int(d.mask.sum()) == int(mask_utils.area(r)) for d, r in zip(dets, rles)])
        crowd = np.array([a["iscrowd"] for a in anns], np.uint8)
        expected = np.asarray(mask_utils.iou(rles, rles, crowd))
        keep = whole[:, None] & whole[None, :]
        ours = compute_ious(dets, dets, iscrowd="iscrowd", use_masks=True, frame_size=(w, h),
                            rounding="round")
        np.testing.assert_allclose(ours[keep], expected[keep], atol=1e-6, rtol=0)
        floor = compute_ious(dets, dets, iscrowd="iscrowd", use_masks=True, frame_size=(w, h))
        sel = keep & (expected > 0)
        exact_pairs += int(sel.sum())
        floor_errors.extend(np.abs(floor - expected)[sel].tolist())
    assert exact_pairs > 1000
    assert max(floor_errors) > 0.01  # why rounding="round" exists
