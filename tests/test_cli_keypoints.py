"""``iou-audit keypoints ...`` on the CrowdPose example in a FiftyOne database: the published AP
through the command line, the agreement and duplicate audits, help texts and errors."""
from __future__ import annotations

import pytest

from iou_audit.cli import build_parser, main
from iou_audit.results import list_audits


@pytest.fixture(scope="module")
def crowdpose(shared_data):
    from iou_audit.examples.crowdpose import load_dataset

    ds = load_dataset(shared_data / "crowdpose-example", name="cli-crowdpose")
    yield ds
    ds.delete()


def test_every_keypoint_option_has_help():
    parser = build_parser()
    top = next(a for a in parser._actions if a.dest == "command").choices["keypoints"]
    subs = next(a for a in top._actions if a.dest == "keypoint_audit").choices
    assert set(subs) == {"predictions", "agreement", "duplicates"}
    for name, sub in subs.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"keypoints {name} {action.option_strings or action.dest} has no --help text"


def test_predictions_published_ap(crowdpose, capsys):
    code = main(["keypoints", "predictions", "-d", "cli-crowdpose", "--pred-field", "predictions",
                 "--skeleton", "crowdpose", "--score-attribute", "score", "--box-attribute", "bbox",
                 "--no-area-ranges", "--audit-key", "kpcli"])
    out = capsys.readouterr().out
    assert code == 0 and "AP 0.7877" in out and "AP50 0.9881" in out and "AP75 0.7314" in out, out
    assert "left_ankle" in out and "kpcli" in list_audits(crowdpose)


def test_agreement_and_duplicates(crowdpose, capsys):
    assert main(["keypoints", "agreement", "-d", "cli-crowdpose", "--fields", "ground_truth", "predictions",
                 "--skeleton", "crowdpose", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "mean_oks 0.8802" in out and "object_f1 0.7500" in out, out
    assert main(["keypoints", "duplicates", "-d", "cli-crowdpose", "--field", "predictions",
                 "--sigmas", *map(str, [.079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089,
                                        .079, .079]), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "n_duplicate_skeleton 1" in out, out


def test_errors_exit_non_zero(crowdpose, capsys):
    # 14-point skeletons without sigmas: a clear error, exit status 2
    assert main(["keypoints", "duplicates", "-d", "cli-crowdpose", "--field", "predictions", "--no-save"]) == 2
    assert "default sigmas are for 17" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keypoints", "predictions", "-d", "cli-crowdpose", "--pred-field", "predictions", "--flip-pairs", "x"])
