"""The labels-only prior (``audit_label_prior``) on real BCCD: z-scores against numpy/scipy computed here
from the raw boxes; the mixture EM against data drawn from a known mixture; injected errors found;
CLI and operator runs store what the library call stores."""
import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from iou_audit.audits.prior import audit_label_prior
from iou_audit.audits.prior_scores import scale_mixture_em
from iou_audit.cli import main as cli_main
from iou_audit.ingest import ingest
from iou_audit.results import list_audits, load_audit

OPERATOR = "@iou-audit/iou-audit/audit_label_prior"
SHRINK = 10.0  # the audit's default shrinkage, passed explicitly below
PLANTED: dict = {}


@pytest.fixture(scope="module")
def bccd(shared_data):
    ds = ingest(shared_data / "bccd", format=None, progress=False)
    ds.compute_metadata()
    # two injected errors: a WBC box relabelled Platelets (a class of another size), an RBC box 3x as wide
    first = ds.match(fo.ViewField("ground_truth.detections").length() > 3).first()
    dets = first.ground_truth.detections
    wbc = next(d for d in dets if d.label == "WBC")
    wbc.label = "Platelets"
    rbc = next(d for d in dets if d.label == "RBC" and d.bounding_box[0] > 0.05 and d.bounding_box[0] + 3 *
               d.bounding_box[2] < 0.95 and d.bounding_box[1] > 0.01 and d.bounding_box[1] + d.bounding_box[3] < 0.99)
    x, y, w, h = rbc.bounding_box
    rbc.bounding_box = [x, y, 3 * w, h]
    first.save()
    PLANTED.update(swap=wbc.id, wide=rbc.id)
    yield ds
    ds.delete()


def _robust_z(x, classes, border=None):
    """Class z-scores by the documented rule, from scipy's MAD (scale='normal': x 1/0.6745)."""
    med = {c: np.median(x[classes == c]) for c in set(classes)}
    dev = np.abs(x - np.array([med[c] for c in classes]))
    pooled = np.median(dev) / 0.6744897501960817
    g_med = np.median(x)
    z = np.empty(len(x))
    for c in set(classes):
        sel = classes == c
        n = sel.sum()
        m = (n * med[c] + SHRINK * g_med) / (n + SHRINK)
        s = np.sqrt((n * median_abs_deviation(x[sel], scale="normal") ** 2 + SHRINK * pooled ** 2) / (n + SHRINK))
        z[sel] = (x[sel] - m) / s
    return z


def test_z_scores_equal_numpy_from_raw_boxes(bccd):
    r = audit_label_prior(bccd, "ground_truth", shrinkage=SHRINK, audit_key="prior")
    boxes, labels, za, zr, sus, W, H = bccd.values(
        ["ground_truth.detections.bounding_box", "ground_truth.detections.label", "ground_truth.detections.prior_z_area",
         "ground_truth.detections.prior_z_aspect", "ground_truth.detections.prior_suspicion", "metadata.width",
         "metadata.height"])
    rows = [(b, lab, a, s, p, w, h) for bs, ls, as_, ss, ps, w, h in zip(boxes, labels, za, zr, sus, W, H)
            for b, lab, a, s, p in zip(bs, ls, as_, ss, ps)]
    b = np.array([r_[0] for r_ in rows], float)
    cls = np.array([r_[1] for r_ in rows], dtype=object)
    wpx, hpx = b[:, 2] * np.array([r_[5] for r_ in rows]), b[:, 3] * np.array([r_[6] for r_ in rows])
    ok = (wpx > 0) & (hpx > 0)
    assert (~ok).sum() == 2  # BCCD's two zero-size boxes: no z (the duplicates audit's degenerate_box)
    border = ((b[:, 0] <= 1e-3) | (b[:, 1] <= 1e-3) | (b[:, 0] + b[:, 2] >= 1 - 1e-3) | (b[:, 1] + b[:, 3] >= 1 - 1e-3))
    za_exp = np.zeros(len(b))
    zr_exp = np.zeros(len(b))
    za_exp[ok] = _robust_z(np.log(wpx[ok] * hpx[ok]), cls[ok])
    zr_exp[ok] = _robust_z(np.log(wpx[ok] / hpx[ok]), cls[ok])
    za_exp[border] = np.maximum(za_exp[border], 0)  # a box cut by the border may be small
    zr_exp[border] = 0.0                              # ... and oddly shaped
    assert np.array([r_[2] for r_ in rows]) == pytest.approx(za_exp, abs=2e-4)
    assert np.array([r_[3] for r_ in rows]) == pytest.approx(zr_exp, abs=2e-4)
    assert len(rows) == r.metrics["n_labels"] == bccd.count("ground_truth.detections")
    # the two planted errors are flagged, both by size/aspect, among the most suspicious labels
    planted = PLANTED
    f = r.findings.set_index("label_id")
    assert f.loc[planted["swap"], "kind"] == "size_outlier"
    assert f.loc[planted["wide"], "kind"] in ("aspect_outlier", "size_outlier")
    p = np.array([r_[4] for r_ in rows])
    ids = [i for v in bccd.values("ground_truth.detections.id") for i in v]
    rank = {i: k for k, i in enumerate(np.array(ids)[np.argsort(-p, kind="stable")])}
    assert rank[planted["swap"]] < 0.01 * len(ids) and rank[planted["wide"]] < 0.02 * len(ids)
    assert 0 < r.metrics["error_share"] < 0.5
    assert bccd.count_label_tags().get("prior:size_outlier", 0) == r.metrics["n_size_outlier"] > 0


def test_mixture_em_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    n, pi, tau = 20000, 0.1, np.array([4.0, 1.0])
    err = rng.random(n) < pi
    z = rng.standard_normal((n, 2)) * np.where(err[:, None], tau, 1.0)
    post, pi_hat, tau2_hat, _ = scale_mixture_em(z, np.zeros(2, bool))
    assert pi_hat == pytest.approx(pi, abs=0.015)
    assert np.sqrt(tau2_hat[0]) == pytest.approx(4.0, rel=0.08)
    assert np.sqrt(tau2_hat[1]) == pytest.approx(1.0, abs=0.15)  # a feature that does not separate drops out
    # the posterior is the Bayes rule under the generating model (computed here from the truth)
    lr = np.prod(np.exp(0.5 * z ** 2 * (1 - 1 / tau ** 2)) / tau, axis=1)
    truth_post = pi * lr / (pi * lr + 1 - pi)
    assert np.corrcoef(post, truth_post)[0, 1] > 0.99


def test_cli_and_operator_store_the_library_result(bccd, capsys):
    lib = audit_label_prior(bccd, "ground_truth", save=False)
    assert cli_main(["prior", "-d", bccd.name, "--field", "ground_truth", "--audit-key", "prior_cli"]) == 0
    out = capsys.readouterr().out
    assert "label prior of" in out and "estimated share of unusual labels" in out
    res = foo.execute_operator(OPERATOR, ctx=dict(dataset=bccd, params={"label_field": "ground_truth",
                                                                          "audit_key": "prior_op"}))
    bccd.reload()
    assert {"prior_cli", "prior_op"} <= set(list_audits(bccd))
    for key in ("prior_cli", "prior_op"):
        stored = load_audit(bccd, key).findings
        assert sorted(stored["label_id"]) == sorted(lib.findings["label_id"])
        assert stored.set_index("label_id")["score"].sort_index().to_numpy() == pytest.approx(
            lib.findings.set_index("label_id")["score"].sort_index().to_numpy())
    assert res.result["n_size_outlier"] == lib.metrics["n_size_outlier"]
    assert cli_main(["prior", "-d", bccd.name, "--field", "nope"]) == 2


def test_triage_ranks_every_label_without_a_model(bccd, tmp_path, capsys):
    import pandas as pd

    from iou_audit.review import triage

    audit_label_prior(bccd, "ground_truth", audit_key="prior_q")
    q = triage(bccd, audit_keys=["prior_q"], every_label=True, states=None)
    n = bccd.count("ground_truth.detections")
    assert len(q) == n and q["label_id"].is_unique
    # one scoring source: the combined score orders labels as the prior's own posterior does (the
    # README's rule clips probabilities to [0.001, 0.999] first: ties there)
    ids, post = (bccd.values(f"ground_truth.detections.{a}", unwind=True) for a in ("id", "prior_q_suspicion"))
    by_prior = dict(zip(ids, post))
    seq = np.clip([by_prior[i] for i in q["label_id"]], 1e-3, 1 - 1e-3)
    assert (np.diff(seq) <= 0).all()
    top = list(q["label_id"][: int(0.02 * n)])
    assert PLANTED["swap"] in top and PLANTED["wide"] in top
    unflagged = q[q["kinds"].map(len) == 0]
    assert len(unflagged) and (unflagged["evidence"] == "").all() and (unflagged["n_audits"] == 0).all()
    out = tmp_path / "q.csv"
    assert cli_main(["triage", "-d", bccd.name, "--audit", "prior_q", "--every-label", "--all-states", "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == n and "wrote" in capsys.readouterr().out
