"""The agreement audit through its CLI subcommand and its App operator (immediate and delegated)."""
import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService

from iou_audit.cli import build_parser, main

URI = "@iou-audit/iou-audit/audit_agreement"
X, Y, Z = [0, 0, .2, .2], [.5, .5, .7, .7], [.8, .0, .95, .1]


def det(label, b):
    return fo.Detection(label=label, bounding_box=[b[0], b[1], b[2] - b[0], b[3] - b[1]])


@pytest.fixture
def three(dataset):
    dataset.persistent = True  # the CLI loads it by name
    dataset.add_samples([fo.Sample(
        filepath=f"/nonexistent/{i}.jpg",
        a=fo.Detections(detections=[det("cat", X), det("car", Y)]),
        b=fo.Detections(detections=[det("cat", X), det("car", Y)]),
        c=fo.Detections(detections=[det("dog", X), det("cup", Z)])) for i in range(3)])
    return dataset


def test_cli_agreement_runs_and_prints(three, capsys):
    assert main(["agreement", "-d", three.name, "--fields", "a", "b", "c", "--consensus-field", "fused"]) == 0
    out = capsys.readouterr().out
    assert "annotator x annotator matching F1" in out and "missing_in_annotator" in out
    assert three.count_label_tags("c") == {"agreement:class_conflict": 3, "agreement:extra_in_annotator": 3}
    assert three.count("fused.detections") == 6
    sub = build_parser()._subparsers._group_actions[0].choices["agreement"]
    assert all(a.help for a in sub._actions)


def test_cli_agreement_errors_exit_non_zero(three, capsys):
    assert main(["agreement", "-d", "no-such-dataset", "--fields", "a", "b"]) == 2
    assert main(["agreement", "-d", three.name, "--fields", "a"]) == 2
    assert "label fields" in capsys.readouterr().err


def test_operator_immediate(three):
    res = foo.execute_operator(URI, ctx=dict(dataset=three, params={"label_fields": ["a", "b", "c"], "audit_key": "agr"}))
    assert res.result["n_class_conflict"] == 3 and res.result["n_missing_in_annotator"] == 3
    assert three.count_label_tags("c") == {"agr:class_conflict": 3, "agr:extra_in_annotator": 3}
    requests = [r["operator_uri"] for r in res.executor.to_json()["requests"]]
    assert "set_view" in requests and "reload_dataset" in requests


def test_operator_delegated(three):
    res = foo.execute_operator(URI, ctx=dict(dataset=three, request_delegation=True, params={
        "label_fields": ["a", "b", "c"], "audit_key": "agr_bg", "consensus_field": "fused_bg"}))
    assert res.delegated
    dos = DelegatedOperationService()
    dos.execute_queued_operations(operator=URI, dataset_name=three.name)
    doc = dos.get(res.result["id"])
    assert doc.run_state == "completed", doc.result
    three.reload()
    assert three.count_label_tags("a") == {"agr_bg:missing_in_annotator": 3}
    assert three.count("fused_bg.detections") == 6
    dos.delete_operation(doc.id)


def test_operator_form_lists_label_fields(three):
    ctx = foo.ExecutionContext(request_params={"dataset_name": three.name, "params": {}})
    props = foo.get_operator(URI).resolve_input(ctx).type.properties
    assert {"label_fields", "iou_thresh", "consensus_field", "audit_key", "delegate"} <= set(props)
