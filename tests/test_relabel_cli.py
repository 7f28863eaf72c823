"""``iou-audit relabel-export`` and ``iou-audit fixes`` through ``iou_audit.cli.main``."""
import json

import pytest
from relabel_support import make_dataset

import iou_audit
from iou_audit.cli import main
from iou_audit.relabel import apply_fix, plan_fix


@pytest.fixture
def ds(tmp_path):
    d = make_dataset(tmp_path / "img")
    d.persistent = True  # the CLI loads it by name
    iou_audit.audit_duplicates(d, "gt", audit_key="dups")
    yield d
    d.delete()


def test_relabel_export_and_fixes(ds, tmp_path, capsys):
    assert main(["relabel-export", "-d", ds.name, "--field", "gt", "--tags", "dups:duplicate", "--format", "cvat",
                 str(tmp_path / "out")]) == 0
    assert "wrote 1 samples, 3 labels (2 flagged) as cvat" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "out/relabel_queue.json").read_text())) == 2
    assert main(["relabel-export", "-d", ds.name, "--field", "gt", str(tmp_path / "a/../b")]) == 2
    assert "contains '..'" in capsys.readouterr().err

    assert main(["fixes", "-d", ds.name]) == 0
    assert "(no fixes recorded)" in capsys.readouterr().out
    rec = apply_fix(ds, plan_fix(ds, "gt", ds.first().gt.detections[1].id, "delete_duplicate"), user="cli-test")
    assert main(["fixes", "-d", ds.name]) == 0
    assert f"{rec['fix_id']}" in capsys.readouterr().out
    assert main(["fixes", "-d", ds.name, "--undo", rec["fix_id"]]) == 0
    assert main(["fixes", "-d", ds.name, "--undo", rec["fix_id"]]) == 2
    assert "already undone" in capsys.readouterr().err
    assert len(ds.first().gt.detections) == 3
