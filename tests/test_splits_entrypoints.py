"""The split audit through the CLI (``iou-audit splits``) and the App operator (immediate, with splits
from a field or from tags, and delegated), asserting on what landed in the dataset."""
import shutil

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService

from iou_audit.cli import main
from iou_audit.results import list_audits, load_audit

URI = "@iou-audit/iou-audit/audit_splits"


@pytest.fixture
def leaky(shared_data, tmp_path, dataset):
    """8 BCCD images (train/test) plus an exact copy of image 0 in test; splits as field and tags."""
    src = sorted((shared_data / "bccd" / "JPEGImages").glob("*.jpg"))[200:208]
    paths = [str(shutil.copy(p, tmp_path / p.name)) for p in src]
    copy = str(shutil.copy(paths[0], tmp_path / "copy.jpg"))
    splits = ["train"] * 5 + ["test"] * 3
    samples = [fo.Sample(filepath=p, split=s, tags=[s]) for p, s in zip(paths, splits)]
    samples.append(fo.Sample(filepath=copy, split="test", tags=["test"]))
    for s in samples:
        s["gt"] = fo.Detections(detections=[fo.Detection(label="RBC", bounding_box=[0.1, 0.1, 0.2, 0.2])])
    dataset.add_samples(samples)
    return dataset


def _exact_pair_paths(ds, key):
    result = load_audit(ds, key)
    f = result.findings[result.findings.kind == "leak_exact"]
    path = dict(zip(ds.values("id"), ds.values("filepath")))
    return {(path[a].rsplit("/", 1)[-1], path[b].rsplit("/", 1)[-1]) for a, b in zip(f.sample_id, f.other_sample_id)}


def test_cli_split_field_and_tags(leaky, capsys):
    name = leaky.name
    assert main(["splits", "-d", name, "--split-field", "split", "--audit-key", "sp_cli"]) == 0
    out = capsys.readouterr().out
    assert "leak_exact" in out and "sp_cli-leak_exact" in out
    assert "sp_cli" in list_audits(leaky)
    assert _exact_pair_paths(leaky, "sp_cli") == {("copy.jpg", leaky.first().filepath.rsplit("/", 1)[-1])}
    assert main(["splits", "-d", name, "--split-tags", "train", "test", "--audit-key", "sp_tags",
                 "--label-field", "none", "--no-shifted", "--no-transformed", "--no-save"]) == 0
    assert "sp_tags" not in list_audits(leaky)
    assert "leak_exact" in capsys.readouterr().out


def test_cli_errors(leaky, capsys):
    assert main(["splits", "-d", leaky.name, "--split-field", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # exactly one split source is required by argparse
        main(["splits", "-d", leaky.name])


def test_operator_immediate_field(leaky):
    res = foo.execute_operator(URI, ctx=dict(dataset=leaky, params={
        "split_source": "field", "split_field": "split", "label_field": "gt", "audit_key": "sp_op"}))
    assert res.result["n_leak_exact"] == 1 and res.result["audit_key"] == "sp_op"
    leaky.reload()
    assert "sp_op" in list_audits(leaky)
    view = leaky.load_saved_view("sp_op-leak_exact")
    assert len(view) == 2 and len(set(view.values("sp_op_pair"))) == 1
    requests = res.executor.to_json()["requests"]
    set_view = [r for r in requests if r["operator_uri"].endswith("set_view")]
    assert set_view and set_view[0]["params"].get("name") == "sp_op-leak_exact"


def test_operator_tags_on_current_view(leaky):
    view = leaky.match_tags(["train", "test"]).limit(8)  # drops the copy: no leak left
    res = foo.execute_operator(URI, ctx=dict(dataset=leaky, view=view, params={
        "split_source": "tags", "split_tags": ["train", "test"], "audit_key": "sp_tags",
        "view_target": "CURRENT_VIEW", "shifted": False}))
    assert res.result["n_leak_exact"] == 0
    config = load_audit(leaky, "sp_tags").config
    assert config["split_tags"] == ["train", "test"] and config["shifted"] is False and config["transformed"] is True


def test_operator_delegated(leaky):
    res = foo.execute_operator(URI, ctx=dict(dataset=leaky, request_delegation=True, params={
        "split_source": "field", "split_field": "split", "audit_key": "sp_del"}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=URI, dataset_name=leaky.name)
    doc = dos.get(res.result["id"])
    assert doc.run_state == "completed", doc.result
    assert doc.result.result["n_leak_exact"] == 1
    leaky.reload()
    assert "sp_del" in list_audits(leaky) and leaky.has_saved_view("sp_del-leak_exact")


def test_operator_form_offers_fields_and_tags(leaky):
    from fiftyone.operators.executor import ExecutionContext

    leaky.set_values("emb", [[float(k), 1.0] for k in range(len(leaky))])
    op = foo.get_operator(URI)
    props = op.resolve_type(ExecutionContext(request_params={"dataset_name": leaky.name, "params": {}}),
                            "inputs").type.properties
    assert props["split_source"].default == "field"
    assert props["split_field"].default == "split"
    assert "emb" in props["embeddings_field"].type.values
    assert props["label_field"].type.values == ["gt"] and props["label_field"].default == "gt"
    props = op.resolve_type(ExecutionContext(request_params={
        "dataset_name": leaky.name, "params": {"split_source": "tags"}}), "inputs").type.properties
    assert "split_field" not in props and props["split_tags"].default == ["train", "test"]
