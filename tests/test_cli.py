"""The ``iou-audit`` command line: every subcommand through ``iou_audit.cli.main`` and once through the
installed console script in a subprocess; ingest of layouts written by FiftyOne's own exporters."""
import json
import os
import pathlib
import subprocess
import uuid

import fiftyone as fo
import pandas as pd
import pytest

from iou_audit.cli import build_parser, main
from iou_audit.results import FINDING_COLUMNS, list_audits, load_audit

CONSOLE_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / ".venv" / "bin" / "iou-audit"


@pytest.fixture(scope="module")
def bccd_name(shared_data):
    name = f"cli-bccd-{uuid.uuid4().hex[:8]}"
    assert main(["ingest", str(shared_data / "bccd"), "--name", name]) == 0
    yield name
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert {"ingest", "duplicates", "list", "export", "app"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no --help text"


def test_ingest_bccd(bccd_name, shared_data, capsys):
    ds = fo.load_dataset(bccd_name)
    assert ds.persistent and ds.count() == 364
    main_dir = shared_data / "bccd" / "ImageSets" / "Main"
    assert ds.count_values("split") == {s: len((main_dir / f"{s}.txt").read_text().split())
                                        for s in ("train", "val", "test")}
    assert main(["ingest", str(shared_data / "bccd"), "--name", bccd_name]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


def test_duplicates_list_export(bccd_name, tmp_path, capsys):
    assert main(["duplicates", "-d", bccd_name, "--audit-key", "dups_cli", "--iou-thresh", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "duplicate" in out and "degenerate_box" in out
    ds = fo.load_dataset(bccd_name)
    assert "dups_cli" in list_audits(ds)
    stored = load_audit(ds, "dups_cli")
    assert stored.config["iou_thresh"] == 0.8
    assert (stored.findings.iou[stored.findings.kind == "duplicate"] >= 0.8).all()

    assert main(["list", "-d", bccd_name]) == 0
    out = capsys.readouterr().out
    assert "dups_cli" in out and f"degenerate_box={(stored.findings.kind == 'degenerate_box').sum()}" in out

    for suffix in ("csv", "parquet", "json"):
        path = tmp_path / f"f.{suffix}"
        assert main(["export", "-d", bccd_name, "-k", "dups_cli", str(path)]) == 0
    csv = pd.read_csv(tmp_path / "f.csv")
    parquet = pd.read_parquet(tmp_path / "f.parquet")
    assert list(csv.columns) == list(parquet.columns) == FINDING_COLUMNS
    assert len(csv) == len(parquet) == len(stored.findings)
    assert sorted(csv.label_id) == sorted(parquet.label_id) == sorted(stored.findings.label_id)
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["audit_key"] == "dups_cli" and len(doc["findings"]) == len(csv)


def test_errors_exit_non_zero(bccd_name, tmp_path, capsys):
    assert main(["duplicates", "-d", "no-such-dataset"]) == 2
    assert "no dataset named 'no-such-dataset'" in capsys.readouterr().err
    assert main(["duplicates", "-d", bccd_name, "--field", "nope"]) != 0
    assert "nope" in capsys.readouterr().err
    assert main(["export", "-d", bccd_name, "-k", "never_ran", str(tmp_path / "x.csv")]) != 0
    assert main(["export", "-d", bccd_name, "-k", "dups_cli", str(tmp_path / "x.txt")]) != 0
    assert main(["ingest", str(tmp_path), "--name", "empty-dir"]) != 0
    assert "no voc/coco/yolo/cvat layout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["duplicates", "-d", bccd_name, "--geometry", "circles"])


def test_app_arguments_and_setup(bccd_name, monkeypatch):
    from iou_audit.cli import app

    args = build_parser().parse_args(["app", "-d", bccd_name, "--remote", "--port", "5999",
                                      "--address", "0.0.0.0", "--no-wait"])
    assert (args.remote, args.port, args.address, args.wait) == (True, 5999, "0.0.0.0", False)
    samples, kwargs, plugins = app.prepare(args)
    assert samples.name == bccd_name
    assert kwargs == {"remote": True, "port": 5999, "address": "0.0.0.0"}
    assert plugins == os.environ["FIFTYONE_PLUGINS_DIR"]  # set by conftest: left alone

    monkeypatch.delenv("FIFTYONE_PLUGINS_DIR")
    monkeypatch.setattr(fo.config, "plugins_dir", None)
    assert app.plugin_dir() == str(app.REPO_ROOT) == os.environ["FIFTYONE_PLUGINS_DIR"]
    assert (app.REPO_ROOT / "fiftyone.yml").is_file() and fo.config.plugins_dir == str(app.REPO_ROOT)
    defaults = build_parser().parse_args(["app", "-d", bccd_name])
    assert (defaults.remote, defaults.port, defaults.address, defaults.wait) == (False, None, None, True)


def test_console_script_in_subprocess(bccd_name):
    """The installed ``iou-audit`` runs against the same database (same URI: FiftyOne would otherwise
    attach to whichever database service is already running on the machine)."""
    from fiftyone.core.odm.database import get_db_conn

    host, port = get_db_conn().client.address
    env = dict(os.environ, FIFTYONE_DATABASE_URI=f"mongodb://{host}:{port}")
    proc = subprocess.run([str(CONSOLE_SCRIPT), "duplicates", "-d", bccd_name, "--audit-key", "dups_sub"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "duplicate" in proc.stdout
    ds = fo.load_dataset(bccd_name)
    ds.reload()  # the in-process singleton caches the dataset document; the run came from another process
    assert "dups_sub" in list_audits(ds)
    bad = subprocess.run([str(CONSOLE_SCRIPT), "list", "-d", "no-such-dataset"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no dataset named" in bad.stderr


def _export_subset(tmp_path, shared_data):
    """Ten BCCD images exported by FiftyOne in COCO (two annotation files), YOLOv5 (two splits), CVAT."""
    from iou_audit.ingest import ingest

    src = ingest(shared_data / "bccd", progress=False, compute_metadata=False).sort_by("filepath").limit(10)
    src.clone_sample_field("ground_truth", "second")
    src.set_field("second.detections.label", "cell").save("second")
    coco = tmp_path / "coco"
    src.export(str(coco), fo.types.COCODetectionDataset, label_field="ground_truth",
               labels_path=str(coco / "annotator_a.json"))
    src.export(str(coco), fo.types.COCODetectionDataset, label_field="second", export_media=False,
               labels_path=str(coco / "annotator_b.json"))
    yolo, classes = tmp_path / "yolo", src.distinct("ground_truth.detections.label")
    src.limit(6).export(str(yolo), fo.types.YOLOv5Dataset, label_field="ground_truth", split="train",
                        classes=classes)
    src.skip(6).export(str(yolo), fo.types.YOLOv5Dataset, label_field="ground_truth", split="val",
                       classes=classes)
    cvat = tmp_path / "cvat"
    src.export(str(cvat), fo.types.CVATImageDataset, label_field="ground_truth")
    n_boxes = src.count("ground_truth.detections")
    src._dataset.delete()
    return coco, yolo, cvat, n_boxes


def test_ingest_other_formats(tmp_path, shared_data):
    coco, yolo, cvat, n_boxes = _export_subset(tmp_path, shared_data)
    names = [f"cli-{fmt}-{uuid.uuid4().hex[:6]}" for fmt in ("coco", "yolo", "cvat")]
    try:
        assert main(["ingest", str(coco), "--name", names[0], "--no-persistent"]) == 0
        ds = fo.load_dataset(names[0])
        assert ds.count() == 10
        assert ds.count("annotator_a.detections") == ds.count("annotator_b.detections") == n_boxes
        assert set(ds.distinct("annotator_b.detections.label")) == {"cell"}

        assert main(["ingest", str(yolo), "--name", names[1], "--splits", "field"]) == 0
        ds = fo.load_dataset(names[1])
        assert ds.count_values("split") == {"train": 6, "val": 4} and ds.count_sample_tags() == {}
        assert ds.count("ground_truth.detections") == n_boxes

        assert main(["ingest", str(cvat), "--name", names[2], "--format", "cvat"]) == 0
        ds = fo.load_dataset(names[2])
        fields = ds.get_field_schema(embedded_doc_type=fo.Detections)
        assert sum(ds.count(f"{f}.detections") for f in fields) == n_boxes
    finally:
        for name in names:
            if fo.dataset_exists(name):
                fo.delete_dataset(name)


def test_ingest_bccd_says_it_needs_the_data(tmp_path, monkeypatch):
    from iou_audit.ingest import ingest_bccd

    monkeypatch.setenv("IOU_AUDIT_BCCD", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="needs the BCCD dataset"):
        ingest_bccd(f"bccd-absent-{uuid.uuid4().hex[:6]}")
