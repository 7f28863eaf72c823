"""Simulated annotators: the audit finds the injected misses, extras and class swaps (the
simulator's own record of what it did is the truth)."""
import fiftyone as fo
import numpy as np
import pytest

from iou_audit.audits.agreement import audit_agreement
from iou_audit.demo import run_demo_agreement
from iou_audit.simulate.annotators import AnnotatorNoise, add_simulated_annotators

B, C = "sim_annotator_b", "sim_annotator_c"


@pytest.fixture
def grid(dataset):
    rng = np.random.default_rng(1)
    samples = []
    for i in range(40):
        dets = []
        for r in range(3):
            for c in range(3):
                x, y = 0.05 + c * 0.32, 0.05 + r * 0.32
                dets.append(fo.Detection(label=str(rng.choice(["RBC", "WBC", "Platelets"])),
                                         bounding_box=[x, y, 0.2, 0.2]))
        samples.append(fo.Sample(filepath=f"/nonexistent/{i}.jpg", ground_truth=fo.Detections(detections=dets)))
    dataset.add_samples(samples)
    return dataset


def test_audit_finds_what_the_simulator_injected(grid):
    noise = AnnotatorNoise(p_miss=0.15, p_swap=0.1, sigma_edge=0.0, p_sloppy=0.0, extra_rate=0.0)
    truth = add_simulated_annotators(grid, noise=noise, seed=3)
    res = audit_agreement(grid, ["ground_truth", B, C])
    f = res.findings
    missed = {name: set(t["missed_ids"]) for name, t in truth.items()}
    # A label missed by exactly one simulated annotator: 2 of 3 have it -> missing in that one.
    gt_ids = grid.values("ground_truth.detections.id", unwind=True)
    want_missing = sorted(B if i in missed[B] else C for i in gt_ids if (i in missed[B]) != (i in missed[C]))
    assert sorted(f[f.kind == "missing_in_annotator"].field) == want_missing
    # Missed by both: the real label stands alone -> extra in ground_truth.
    both = {i for i in gt_ids if i in missed[B] and i in missed[C]}
    assert set(f[f.kind == "extra_in_annotator"].label_id) == both
    # Swaps: a swapped label whose object the other two agree on is the minority class.
    swapped = set()
    for name, other in ((B, C), (C, B)):
        t, o = truth[name], truth[other]
        o_src = dict(zip(o["source_ids"], o["noise"]))
        swapped |= {(name, src) for src, kind in zip(t["source_ids"], t["noise"])
                    if kind == "class_swap" and o_src.get(src) not in (None, "class_swap")}
    got = f[f.kind == "class_conflict"]
    ids = {}
    for name in (B, C):
        ids.update(dict(zip(grid.values(f"{name}.detections.id", unwind=True),
                            [(name, s) for s in grid.values(f"{name}.detections.sim_source_id", unwind=True)])))
    flagged = {ids[i] for i in got.label_id if i in ids}
    assert swapped <= flagged and swapped


def test_default_noise_is_found_and_fields_say_simulated(grid):
    res = run_demo_agreement(grid)
    assert set(grid.get_field_schema()) >= {B, C, "sim_consensus"}
    kinds = res.counts()
    assert {"missing_in_annotator", "extra_in_annotator", "class_conflict"} <= set(kinds)
    rel = res.tables["annotators"].set_index("annotator").reliability
    assert rel["ground_truth"] > rel[B] and rel["ground_truth"] > rel[C]  # the real labels are cleanest
    # sloppy edges show up as low agreement on the edited label's cluster
    sloppy = set(grid.filter_labels(B, fo.ViewField("sim_noise") == "sloppy_edge").values(f"{B}.detections.id", unwind=True))
    low = set(res.findings[res.findings.kind == "low_agreement"].label_id)
    assert len(sloppy & low) >= 0.5 * len(sloppy) > 0
    # re-running replaces the demo's own fields
    res2 = run_demo_agreement(grid)
    assert res2.counts() == kinds
