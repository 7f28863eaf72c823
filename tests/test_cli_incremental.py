"""Incremental re-audit from the command line: ``--keep-parts [N]`` on the four audits that can keep
parts, and ``iou-audit rerun-changed``.

Per audit: a CLI run with ``--keep-parts``, label edits made in Python (a moved/relabelled box, a
removed box and prediction, a changed split, a deleted sample), then ``rerun-changed`` through the
CLI; the stored run (every raw sample document, findings, tables, metrics, saved views, schema)
equals a full CLI run from scratch on a clone of the edited dataset, the untouched parts were reused,
and the edits moved the result (so a re-run that missed them would fail). A run without parts makes
``rerun-changed`` exit non-zero with the library's IncrementalError message, no traceback.
"""
import re
import uuid

import pytest
from incremental_support import _bench_scale, full_run_on_copy, same, snapshot

from iou_audit.cli import build_parser, main

N_SAMPLES, PART = 300, 100

#: each audit's CLI options (the same ones as tests/test_incremental.py's library calls)
CLI_ARGS = {
    "duplicates": ["duplicates", "--field", "a", "--batch-size", str(PART)],
    "agreement": ["agreement", "--fields", "a", "b", "c", "--batch-size", str(PART), "--consensus-field", "cons"],
    "predictions": ["predictions", "--pred-field", "pred", "--gt-field", "a"],
    "splits": ["splits", "--split-field", "split", "--label-field", "a"],
}
#: the metrics each audit's edits must move
MOVED = {"duplicates": ("n_duplicate", "n_labels"), "agreement": ("alpha_nominal", "map", "f1"),
         "predictions": ("AP", "AP50", "precision", "recall"), "splits": ("n_leak_exact", "n_split_drift")}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli-incr-img"))
    _bench_scale().ensure_images(path, N_SAMPLES)
    return path


@pytest.fixture
def ds(image_dir):
    """300 samples of bench_scale's generator (annotators a, b, c, predictions pred, split)."""
    import fiftyone as fo

    dataset = _bench_scale().build_dataset(f"cli-incr-{uuid.uuid4().hex[:8]}", N_SAMPLES, image_dir)
    yield dataset
    for name in [n for n in fo.list_datasets() if n.startswith(dataset.name)]:
        fo.delete_dataset(name)


def cli_run(audit: str, samples, key: str, *extra: str) -> int:
    return main([*CLI_ARGS[audit], "-d", samples.name, "--audit-key", key, *extra])


def edit(ds) -> None:
    """Edits in part 1 (sample 150) and part 2 (samples 230 and 260, deleted); part 0 untouched.
    Sample 230 takes sample 10's image and split 'test' (an exact leak for the splits audit)."""
    ids, paths, splits = ds.values("id"), ds.values("filepath"), ds.values("split")
    s = ds[ids[150]]
    for det in s.a.detections[:3]:  # moved and relabelled
        det.bounding_box = [0.1, 0.1, 0.3, 0.3]
        det.label = "z"
    s.a.detections.append(s.a.detections[-1].copy())  # a duplicate of its last box
    s.save()
    s = ds[ids[230]]
    s.b.detections = s.b.detections[1:]
    s.pred.detections = s.pred.detections[2:]
    s.filepath = paths[10]
    s.split = "test" if splits[10] != "test" else "val"
    s.save()
    ds.delete_samples(ids[260])


@pytest.mark.parametrize("audit", sorted(CLI_ARGS))
def test_cli_rerun_changed_equals_full_rerun(ds, audit, capsys):
    from iou_audit import shards

    key = f"c_{audit}"
    assert cli_run(audit, ds, key, "--keep-parts", str(PART)) == 0
    out = capsys.readouterr().out
    assert f"kept 3 parts; after edits: iou-audit rerun-changed -d {ds.name} --audit-key {key}" in out
    plan = shards.list_plans(ds, key)[0]
    assert plan["origin"] == "plain" and [s["n_samples"] for s in plan["shards"]] == [PART] * 3
    before = snapshot(ds, key)

    edit(ds)
    want = full_run_on_copy(ds, key, lambda copy, k: cli_run(audit, copy, k))  # full CLI run, no parts
    capsys.readouterr()
    assert main(["rerun-changed", "-d", ds.name, "--audit-key", key]) == 0
    out = capsys.readouterr().out
    m = re.search(r"(\d+) changed samples; (\d+) of (\d+) parts recomputed, (\d+) reused", out)
    assert m, out
    n_changed, n_recomputed, n_parts, n_reused = map(int, m.groups())
    # samples 150 and 230 edited (260 deleted, not listed); parts 1 and 2 recomputed, part 0 reused
    assert (n_changed, n_recomputed, n_parts, n_reused) == (2, 2, 3, 1), out
    assert f"({N_SAMPLES - 1} samples)" in out
    new_plan = shards.list_plans(ds, key)[0]
    assert [s["reused"] for s in new_plan["shards"]] == [True, False, False]
    assert new_plan["shards"][0]["file_id"] == plan["shards"][0]["file_id"]
    got = snapshot(ds, key)
    moved = [k for k in MOVED[audit] if before["metrics"].get(k) != want["metrics"].get(k)]
    assert moved, f"the edits did not change {MOVED[audit]}: the test would not see a missed edit"
    same(want, got)


def test_cli_rerun_changed_errors(ds, capsys):
    from iou_audit.shards import incremental_status

    assert cli_run("duplicates", ds, "plain") == 0  # no --keep-parts
    capsys.readouterr()
    assert main(["rerun-changed", "-d", ds.name, "--audit-key", "plain"]) == 2
    err = capsys.readouterr().err
    reason = incremental_status(ds, "plain")
    assert "kept no parts" in reason and "--keep-parts" in reason  # says what to do on the command line
    assert err == f"iou-audit rerun-changed: error: {reason}\n"  # the message, no traceback
    assert main(["rerun-changed", "-d", ds.name, "--audit-key", "nope"]) == 2
    assert "no iou-audit run 'nope'" in capsys.readouterr().err
    # keeping parts needs a saved run; a part size must be >= 1
    assert cli_run("duplicates", ds, "x", "--keep-parts", "--no-save") == 2
    assert "keep_parts=True needs save=True" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_run("duplicates", ds, "x", "--keep-parts", "0")
    assert "keep_parts must be True or a number of samples per part >= 1, got 0" in capsys.readouterr().err


def test_keep_parts_option_parses():
    from iou_audit.shards import SHARDABLE_AUDITS

    parser = build_parser()
    for audit, argv in CLI_ARGS.items():
        assert audit in SHARDABLE_AUDITS
        base = [*argv, "-d", "x"]
        assert parser.parse_args(base).keep_parts is False
        assert parser.parse_args([*base, "--keep-parts"]).keep_parts is True
        assert parser.parse_args([*base, "--keep-parts", "200"]).keep_parts == 200
