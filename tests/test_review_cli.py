"""``iou-audit triage`` and ``iou-audit review`` through the CLI entry point, on a real dataset;
exports are read back with pandas/json and compared with the library's queue."""
import json

import fiftyone as fo
import pandas as pd
import pytest

import iou_audit
from iou_audit.cli import main
from iou_audit.review import load_decisions, triage


@pytest.fixture
def ds():
    d = fo.Dataset()
    d.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png", gt=fo.Detections(detections=[
        fo.Detection(label="RBC", bounding_box=[0.1, 0.1, 0.2, 0.2]),
        fo.Detection(label="RBC", bounding_box=[0.1, 0.1, 0.2, 0.2]),
        fo.Detection(label="WBC", bounding_box=[0.5, 0.5, 0.0, 0.1])])) for i in range(3)])
    yield d
    d.delete()


def test_triage_without_audits_says_so(ds, capsys):
    assert main(["triage", "-d", ds.name]) == 0
    assert f"no stored audits on dataset {ds.name!r}" in capsys.readouterr().out


def test_triage_prints_and_exports_every_format(ds, capsys, tmp_path):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    expected = triage(ds)
    assert len(expected) == 6  # 3 copies + 3 zero-width boxes
    assert main(["triage", "-d", ds.name, "--export", str(tmp_path / "q.csv")]) == 0
    out = capsys.readouterr().out
    assert f"triage queue of {ds.name!r}: 6 rows (open 6) in " in out
    assert "dups: duplicate of another RBC box, IoU 1.00" in out and "wrote 6 queue rows" in out

    csv = pd.read_csv(tmp_path / "q.csv")
    assert list(csv["row_id"]) == list(expected["row_id"])
    assert list(csv["evidence"]) == list(expected["evidence"])
    assert [json.loads(a) for a in csv["audits"]] == list(expected["audits"])
    assert csv["score"].tolist() == pytest.approx(expected["score"].tolist())

    assert main(["triage", "-d", ds.name, "--limit", "2", "-o", str(tmp_path / "q.json")]) == 0
    rows = json.loads((tmp_path / "q.json").read_text())
    assert [r["row_id"] for r in rows] == list(expected["row_id"][:2])
    assert rows[0]["kinds"] == expected.loc[0, "kinds"] and rows[0]["review_state"] == "open"

    assert main(["triage", "-d", ds.name, "--audit", "dups", "-o", str(tmp_path / "q.parquet")]) == 0
    pq = pd.read_parquet(tmp_path / "q.parquet")
    assert list(pq["row_id"]) == list(expected["row_id"]) and list(pq["kinds"].map(list)) == list(expected["kinds"])

    first = ds.first().id
    ds.save_view("one", ds.select(first))
    assert main(["triage", "-d", ds.name, "--view", "one", "-o", str(tmp_path / "v.json")]) == 0
    assert {r["sample_id"] for r in json.loads((tmp_path / "v.json").read_text())} == {first}
    assert main(["triage", "-d", ds.name, "--audit", "nope"]) == 0
    out = capsys.readouterr().out
    assert "audit 'nope' is not stored" in out and "none of the audits ['nope']" in out
    assert main(["triage", "-d", ds.name, "-o", str(tmp_path / "q.txt")]) == 2
    assert "cannot tell the export format" in capsys.readouterr().err


def test_review_marks_shows_and_clears(ds, capsys):
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    rows = list(triage(ds)["row_id"])
    assert main(["review", "-d", ds.name, "--mark", "not_an_error", rows[0], rows[1], "--user", "ana"]) == 0
    assert "marked 2 row(s) not_an_error" in capsys.readouterr().out
    d = load_decisions(ds)
    assert {d[r]["state"] for r in rows[:2]} == {"not_an_error"} and d[rows[0]]["user"] == "ana"
    assert set(triage(ds)["row_id"]) == set(rows[2:])

    assert main(["triage", "-d", ds.name, "--state", "not_an_error"]) == 0
    assert "2 rows (not_an_error 2)" in capsys.readouterr().out
    assert main(["review", "-d", ds.name, "--show"]) == 0
    assert rows[0] in capsys.readouterr().out

    assert main(["review", "-d", ds.name, "--clear", rows[0]]) == 0
    assert "cleared 1 decision(s)" in capsys.readouterr().out
    assert set(load_decisions(ds)) == {rows[1]}

    assert main(["review", "-d", ds.name, "--mark", "fine", rows[0]]) == 2
    assert "the first value is the state" in capsys.readouterr().err
    assert main(["review", "-d", ds.name, "--mark", "confirmed", "0123456789abcdef01234567"]) == 2
    assert "not a label or sample" in capsys.readouterr().err
    assert set(load_decisions(ds)) == {rows[1]}


def test_demo_prints_the_merged_queue(ds, capsys):
    from iou_audit.demo import _triage

    _triage(ds, {})
    assert "0 rows" in capsys.readouterr().out
    iou_audit.audit_duplicates(ds, "gt", audit_key="dups")
    names = {s: f"img{i}.png" for i, s in enumerate(ds.values("id"))}
    _triage(ds, names)
    out = capsys.readouterr().out
    assert "6 rows in" in out and "1 audit(s): 6" in out and "img0.png: dups: " in out
