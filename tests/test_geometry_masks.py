"""iou_audit.geometry.masks against independent oracles.

- pycocotools ``mask.iou`` on RLE-encoded full canvases (masks placed by integer pixel boxes in the
  test itself), with and without iscrowd;
- FiftyOne's own renderer ``Detection.to_segmentation`` for masks whose shape differs from their box
  (then a plain numpy IoU on the rendered frames);
- sklearn's ``jaccard_score`` for semantic IoU;
- hand-built boundary rings and scipy's binary erosion for Boundary IoU.
"""
import fiftyone  # noqa: F401  before any doctest runs: a doctest can leave an ndarray in
import numpy as np  # builtins._, which breaks pydash's import inside fiftyone if it loads later
import pytest
from pycocotools import mask as mask_utils

from iou_audit.geometry.masks import (
    batched_cropped_mask_iou,
    boundary_iou,
    cropped_mask_iou,
    mask_pixel_rects,
    mask_to_boundary,
    semantic_iou,
)

FRAME_SIZES = [(64, 48), (333, 517), (640, 480)]


def random_pixel_objects(rng, width, height, n, empty_every=7):
    """n objects: integer pixel boxes (x, y, w, h) clustered so many overlap, and random masks."""
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    objects = []
    for k in range(n):
        w = int(rng.integers(1, max(2, width // 3)))
        h = int(rng.integers(1, max(2, height // 3)))
        x = int(np.clip(cx + rng.normal(0, width / 8) - w / 2, 0, width - w))
        y = int(np.clip(cy + rng.normal(0, height / 8) - h / 2, 0, height - h))
        if k % empty_every == empty_every - 1:
            mask = np.zeros((h, w), bool)
        elif k % 2:
            mask = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        else:  # an ellipse filling the box
            yy, xx = np.mgrid[0:h, 0:w]
            mask = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
        objects.append(((x, y, w, h), mask))
    return objects


def relative_xyxy(objects, width, height):
    return np.array([[x / width, y / height, (x + w) / width, (y + h) / height]
                     for (x, y, w, h), _ in objects], dtype=np.float64).reshape(-1, 4)


def coco_rles(objects, width, height):
    """Independent placement: paste each mask at its integer pixel box on a zero canvas, encode."""
    rles = []
    for (x, y, w, h), mask in objects:
        canvas = np.zeros((height, width), np.uint8)
        canvas[y:y + h, x:x + w] = mask
        rles.append(mask_utils.encode(np.asfortranarray(canvas)))
    return rles


@pytest.mark.parametrize("width,height", FRAME_SIZES)
@pytest.mark.parametrize("with_crowd", [False, True])
def test_cropped_mask_iou_matches_pycocotools(width, height, with_crowd):
    rng = np.random.default_rng(width + height + with_crowd)
    overlapping_pairs = 0
    for _ in range(4):
        preds = random_pixel_objects(rng, width, height, int(rng.integers(1, 12)))
        gts = random_pixel_objects(rng, width, height, int(rng.integers(1, 12)))
        crowd = rng.random(len(gts)) < 0.4 if with_crowd else np.zeros(len(gts), bool)
        expected = np.asarray(mask_utils.iou(coco_rles(preds, width, height),
                                             coco_rles(gts, width, height), crowd.astype(np.uint8)))
        # uint8 0/255 masks are as good as bool ones (FiftyOne: any nonzero value is foreground).
        pred_masks = [m if k % 3 else m.astype(np.uint8) * 255 for k, (_, m) in enumerate(preds)]
        ours = cropped_mask_iou(pred_masks, relative_xyxy(preds, width, height),
                                [m for _, m in gts], relative_xyxy(gts, width, height),
                                (width, height), crowd=crowd if with_crowd else None)
        assert ours.shape == (len(preds), len(gts))
        np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)
        overlapping_pairs += int((ours > 0).sum())
    assert overlapping_pairs > 0  # the clustered boxes overlap: the comparison is not all zeros


def render_like_fiftyone(det_xywh, mask, width, height):
    import fiftyone as fo

    det = fo.Detection(label="x", bounding_box=list(det_xywh), mask=mask)
    return det.to_segmentation(frame_size=(width, height)).mask > 0


@pytest.mark.parametrize("width,height", FRAME_SIZES)
def test_resized_masks_are_placed_like_detection_to_segmentation(width, height):
    """Random real-valued boxes and mask shapes unrelated to the box: FiftyOne's renderer is the oracle."""
    rng = np.random.default_rng(width * height)
    xywh, masks = [], []
    for k in range(16):
        w, h = rng.uniform(0.05, 0.6, size=2)
        x, y = rng.uniform(-0.1, 1.0 - w / 2), rng.uniform(-0.1, 1.0 - h / 2)  # some cross the edge
        shape = tuple(rng.integers(1, 40, size=2))
        mask = rng.random(shape) < 0.6
        if k % 3 == 0:
            mask = mask.astype(np.uint8) * 255  # uint8 0/255 masks are resized on their values
        xywh.append((x, y, w, h))
        masks.append(mask)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in xywh])  # x + w as FiftyOne computes it
    frames = [render_like_fiftyone(b, m, width, height) for b, m in zip(xywh, masks)]
    inter = np.array([[np.count_nonzero(a & b) for b in frames] for a in frames])
    areas = np.array([np.count_nonzero(a) for a in frames])
    union = areas[:, None] + areas[None, :] - inter
    expected = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    ours = cropped_mask_iou(masks, boxes, masks, boxes, (width, height))
    np.testing.assert_allclose(ours, expected, atol=1e-12, rtol=0)
    assert (expected[~np.eye(len(masks), dtype=bool)] > 0).any()


def test_round_placement_matches_coco_importer_crops():
    """rounding='round' places masks where FiftyOne's COCO importer cut them (mask[round(y):round(y+h)])."""
    rng = np.random.default_rng(5)
    width, height = 300, 200
    rles, masks, boxes = [], [], []
    for _ in range(12):
        x, y = rng.uniform(0, 150), rng.uniform(0, 100)
        w, h = rng.uniform(5, 120), rng.uniform(5, 90)
        canvas = np.zeros((height, width), np.uint8)
        r0, r1, c0, c1 = (int(round(v)) for v in (y, y + h, x, x + w))
        canvas[r0:r1, c0:c1] = rng.random((r1 - r0, c1 - c0)) < 0.7
        rles.append(mask_utils.encode(np.asfortranarray(canvas)))
        masks.append(canvas[r0:r1, c0:c1].astype(bool))
        boxes.append([x / width, y / height, (x + w) / width, (y + h) / height])
    expected = np.asarray(mask_utils.iou(rles, rles, np.zeros(len(rles), np.uint8)))
    ours = cropped_mask_iou(masks, boxes, masks, boxes, (width, height), rounding="round")
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_floor_placement_snaps_float_artifacts():
    # int(640 * (1/640 + 7/640)) == 7 in FiftyOne; the box is pixels [1, 8).
    rects = mask_pixel_rects(np.array([[1 / 640, 0.0, 1 / 640 + 7 / 640, 1.0]]), np.array([640, 1]))
    assert rects.tolist() == [[1, 0, 8, 1]]
    assert int(640 * 1.0 * (1 / 640 + 7 / 640)) == 7  # the artifact is real (else this test is moot)


@pytest.mark.parametrize("chunk_pixels", [None, 1, 5000])
def test_batched_matches_per_sample_pycocotools(chunk_pixels, monkeypatch):
    if chunk_pixels is not None:  # samples go through in several chunks (one each with 1 pixel)
        import iou_audit.geometry.masks as masks_module

        monkeypatch.setattr(masks_module, "_CHUNK_PIXELS", chunk_pixels)
    rng = np.random.default_rng(11)
    sizes = [(64, 48), (120, 90), (50, 70), (80, 80)]
    masks1, boxes1, off1, masks2, boxes2, off2, expected = [], [], [0], [], [], [0], []
    for s, (w, h) in enumerate(sizes):
        n1, n2 = [(3, 4), (0, 2), (5, 0), (6, 6)][s]
        p = random_pixel_objects(rng, w, h, n1) if n1 else []
        g = random_pixel_objects(rng, w, h, n2) if n2 else []
        masks1 += [m for _, m in p]
        masks2 += [m for _, m in g]
        boxes1.append(relative_xyxy(p, w, h))
        boxes2.append(relative_xyxy(g, w, h))
        off1.append(off1[-1] + n1)
        off2.append(off2[-1] + n2)
        crowd = np.arange(n2) % 2 == 1
        block = (np.asarray(mask_utils.iou(coco_rles(p, w, h), coco_rles(g, w, h), crowd))
                 if n1 and n2 else np.zeros((n1, n2)))
        expected.append((block, crowd))
    crowd2 = np.concatenate([c for _, c in expected])
    values, pair_off = batched_cropped_mask_iou(masks1, np.concatenate(boxes1), off1, masks2,
                                                np.concatenate(boxes2), off2, np.array(sizes), crowd2)
    assert pair_off.tolist() == [0, 12, 12, 12, 48]
    for s, (block, _) in enumerate(expected):
        got = values[pair_off[s]:pair_off[s + 1]].reshape(block.shape)
        np.testing.assert_allclose(got, block, atol=1e-6, rtol=0)


def test_degenerate_boxes_and_empty_masks_give_zero_without_nan():
    full = np.ones((4, 4), bool)
    boxes = np.array([
        [0.1, 0.1, 0.5, 0.5],        # fine
        [0.5, 0.5, 0.5, 0.9],        # zero width
        [0.6, 0.6, 0.2, 0.9],        # negative width
        [np.nan, 0.1, 0.5, 0.5],     # NaN
        [0.1, 0.1, np.inf, 0.5],     # inf
        [0.1, 0.1, 0.5, 0.5],        # fine box, empty mask
        [0.1, 0.1, 0.1001, 0.1001],  # smaller than a pixel: empty window
        [1.2, 1.2, 1.5, 1.5],        # outside the frame
        [0.1, 0.1, 0.5, 0.5],        # fine box, no mask (a LabelTable row without one)
    ])
    masks = [full, full, full, full, full, np.zeros((4, 4), bool), full, np.zeros((0, 0), bool), None]
    ious = cropped_mask_iou(masks, boxes, masks, boxes, (20, 20), crowd=np.ones(len(boxes), bool))
    assert np.isfinite(ious).all()
    expected = np.zeros((9, 9))
    expected[0, 0] = 1.0
    np.testing.assert_array_equal(ious, expected)
    assert cropped_mask_iou([], np.zeros((0, 4)), masks, boxes, (20, 20)).shape == (0, 9)
    # masks given as nested lists of 0/1 are converted like arrays
    as_lists = cropped_mask_iou([full.astype(int).tolist()], boxes[:1], [full], boxes[:1], (20, 20))
    assert as_lists.tolist() == [[1.0]]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="masks1: got 1 masks for 2 boxes"):
        cropped_mask_iou([np.ones((2, 2))], np.zeros((2, 4)), [], np.zeros((0, 4)), (4, 4))
    with pytest.raises(ValueError, match=r"masks1\[0\] must be a 2-D mask"):
        cropped_mask_iou([np.ones(4)], [[0, 0, 1, 1]], [], np.zeros((0, 4)), (4, 4))
    with pytest.raises(ValueError, match="frame_size"):
        cropped_mask_iou([np.ones((2, 2))], [[0, 0, 1, 1]], [], np.zeros((0, 4)), (0, 4))
    with pytest.raises(ValueError, match=r"samples \[1\] have \[\[nan, 4.0\]\]"):
        batched_cropped_mask_iou([np.ones((2, 2))] * 2, [[0, 0, 1, 1]] * 2, [0, 1, 2], [], np.zeros((0, 4)),
                                 [0, 0, 0], np.array([[4, 4], [np.nan, 4]]))
    with pytest.raises(ValueError, match="rounding"):
        mask_pixel_rects(np.zeros((1, 4)), np.array([4, 4]), rounding="ceil")


def test_semantic_iou_matches_sklearn_jaccard():
    from sklearn.metrics import jaccard_score

    rng = np.random.default_rng(3)
    gt = rng.integers(0, 5, size=(60, 80))
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 6, size=gt.shape))
    result = semantic_iou(gt, pred)
    assert result["classes"].tolist() == [0, 1, 2, 3, 4, 5]
    expected = jaccard_score(gt.ravel(), pred.ravel(), labels=result["classes"], average=None,
                             zero_division=0)
    np.testing.assert_allclose(result["iou"], expected, atol=1e-12)
    assert result["miou"] == pytest.approx(expected.mean())
    # A subset of classes, one of them absent everywhere, and a void value that is ignored.
    gt[:10] = 255
    keep = gt.ravel() != 255
    sub = semantic_iou(gt, pred, classes=[3, 1, 9], ignore_index=255)
    expected = jaccard_score(gt.ravel()[keep], pred.ravel()[keep], labels=[3, 1, 9], average=None,
                             zero_division=0)
    np.testing.assert_allclose(sub["iou"], expected, atol=1e-12)
    assert sub["present"].tolist() == [True, True, False]
    assert sub["miou"] == pytest.approx(expected[:2].mean())
    assert sub["confusion"].sum() == keep.sum()


def test_semantic_iou_empty_and_errors():
    r = semantic_iou(np.zeros((3, 3), int), np.zeros((3, 3), int), classes=[1])
    assert r["iou"].tolist() == [0.0] and r["miou"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        semantic_iou(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="integer"):
        semantic_iou(np.zeros((3, 3)), np.zeros((3, 3)))


def square(size, r0, r1, c0, c1):
    m = np.zeros(size, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_boundary_iou_two_squares_by_hand():
    # 100 x 100 image: d = round(0.02 * sqrt(2) * 100) = round(2.83) = 3.
    size = (100, 100)
    a, b = square(size, 20, 60, 20, 60), square(size, 30, 70, 30, 70)
    ring_a = a & ~square(size, 23, 57, 23, 57)
    ring_b = b & ~square(size, 33, 67, 33, 67)
    assert ring_a.sum() == 40 * 40 - 34 * 34
    expected = (ring_a & ring_b).sum() / (ring_a | ring_b).sum()
    assert boundary_iou(a, b) == pytest.approx(expected, abs=1e-12)
    # A square cut by the image border has its boundary along the border too.
    c = square(size, 0, 40, 0, 40)
    ring_c = c & ~square(size, 3, 37, 3, 37)
    np.testing.assert_array_equal(mask_to_boundary(c), ring_c)
    assert boundary_iou(a, a) == 1.0
    assert boundary_iou(np.zeros(size, bool), np.zeros(size, bool)) == 0.0


def test_boundary_matches_scipy_erosion_on_random_shapes():
    from scipy import ndimage

    rng = np.random.default_rng(8)
    for shape, ratio in [((50, 70), 0.02), ((120, 90), 0.05), ((33, 33), 0.001)]:
        m = ndimage.binary_opening(rng.random(shape) < 0.6, iterations=1)
        d = max(int(round(ratio * np.hypot(*shape))), 1)
        eroded = ndimage.binary_erosion(m, structure=np.ones((2 * d + 1, 2 * d + 1)), border_value=0)
        np.testing.assert_array_equal(mask_to_boundary(m, ratio), m & ~eroded)


# Properties (hypothesis): symmetry, bounds, IoU(a, a) = 1, invariance to scaling the image.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st


@st.composite
def pixel_scenes(draw):
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(0, 6))
    rng = np.random.default_rng(seed)
    objects = []
    for _ in range(n):
        x0, x1 = sorted(rng.integers(0, width + 1, size=2))
        y0, y1 = sorted(rng.integers(0, height + 1, size=2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        x1, y1 = min(x1, width), min(y1, height)
        x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
        mask = rng.random((y1 - y0, x1 - x0)) < rng.uniform(0, 1)
        objects.append(((x0, y0, x1 - x0, y1 - y0), mask))
    return width, height, objects


@settings(max_examples=60, deadline=None)
@given(pixel_scenes(), st.integers(2, 3))
def test_cropped_mask_iou_properties(scene, scale):
    width, height, objects = scene
    masks = [m for _, m in objects]
    boxes = relative_xyxy(objects, width, height)
    ious = cropped_mask_iou(masks, boxes, masks, boxes, (width, height))
    assert np.isfinite(ious).all() and (ious >= 0).all() and (ious <= 1 + 1e-12).all()
    np.testing.assert_allclose(ious, ious.T, atol=0)
    nonempty = np.array([m.any() for m in masks], bool)
    np.testing.assert_array_equal(np.diag(ious)[nonempty], 1.0)
    np.testing.assert_array_equal(ious[~nonempty], 0.0)
    # Scaling the image (and each mask, pixel for pixel) by an integer factor keeps every IoU.
    big = [np.kron(m, np.ones((scale, scale), bool)) for m in masks]
    scaled = cropped_mask_iou(big, boxes, big, boxes, (width * scale, height * scale))
    np.testing.assert_allclose(scaled, ious, atol=1e-12)


def test_docstring_examples_run():
    """The worked examples in the docstrings are checked, not decoration."""
    import builtins
    import doctest

    import iou_audit.geometry.dense_masks as dense_masks
    import iou_audit.geometry.masks as masks
    import iou_audit.labels as labels

    for module in (masks, dense_masks, labels):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__
    builtins.__dict__.pop("_", None)
