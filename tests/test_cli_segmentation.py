"""``iou-audit segmentation ...`` on a small real dataset (masks in the database and PNG files, built
as in test_segmentation_agreement_audit.py): metrics equal FiftyOne's evaluate_segmentations, help
texts, errors."""
from __future__ import annotations

import pytest
from test_segmentation_agreement_audit import VALUES, seg_dataset  # noqa: F401 (fixture)

from iou_audit.cli import build_parser, main
from iou_audit.results import list_audits


def test_every_segmentation_option_has_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["segmentation"]
    assert sub.description
    for action in sub._actions:
        assert action.help, f"segmentation {action.option_strings or action.dest} has no --help text"


def test_segmentation_cli_equals_fiftyone(seg_dataset, capsys):  # noqa: F811
    ds, _ = seg_dataset
    ds.persistent = True  # main() loads it by name
    res = ds.exists("r2").evaluate_segmentations("r2", gt_field="r1", mask_targets={v: str(v) for v in VALUES})
    cm = res.pixel_confusion_matrix.astype(float)
    inter = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - inter
    miou = (inter[union > 0] / union[union > 0]).mean()
    accuracy = inter.sum() / cm.sum()
    assert main(["segmentation", "-d", ds.name, "--fields", "r1", "r2", "--audit-key", "segcli"]) == 0
    out = capsys.readouterr().out
    assert f"miou {miou:.4f}" in out and f"pixel_accuracy {accuracy:.4f}" in out, out
    assert "n_class_missing 1" in out and "n_missing_mask 1" in out, out
    ds.reload()
    assert "segcli" in list_audits(ds)


def test_errors_exit_non_zero(seg_dataset, capsys):  # noqa: F811
    ds, _ = seg_dataset
    ds.persistent = True
    assert main(["segmentation", "-d", ds.name, "--fields", "r1", "--no-save"]) == 2
    assert "two or more distinct field names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segmentation", "-d", ds.name])  # --fields is required
