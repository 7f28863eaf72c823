"""iou_audit.table.raw_bson against pymongo's own BSON decoding (the oracle), on random documents
with every value type a label list can hold."""
import bson
import numpy as np
import pytest
from bson import Binary, Int64, ObjectId

from iou_audit.table.raw_bson import join_documents, read_columns

RNG = np.random.default_rng(7)
WORDS = ["cat", "dog", "çà ü", "", "a\x00b", "RBC", "x" * 40]


def _value(kind):
    if kind == "num":
        return [float(RNG.normal()), int(RNG.integers(-5, 5)), Int64(int(RNG.integers(-(2**40), 2**40))), bool(RNG.integers(2)),
                None, float("nan")][RNG.integers(6)]
    if kind == "str":
        return [WORDS[RNG.integers(len(WORDS))], None][int(RNG.random() < 0.1)]
    if kind == "box":
        return [[float(v) for v in RNG.random(4)], [1, 2, 3, 4], [0.1, None, 0.2, 0.3], [1.0, 2.0], "bad", None,
                [1.0, 2.0, 3.0, 4.0, 5.0]][RNG.integers(7)]
    return [{"k": [1, {"z": "q"}]}, Binary(b"\x00\x01", 0), ["t1", "t2"], [], None, "s", 3.5][RNG.integers(7)]


def _docs(n_docs):
    docs = []
    for d in range(n_docs):
        labels = []
        for _ in range(int(RNG.integers(0, 6))):
            label = {"_id": ObjectId()}
            for key, kind in (("num", "num"), ("str", "str"), ("box", "box"), ("any", "any")):
                if RNG.random() < 0.85:  # else absent
                    label[key] = _value(kind)
            labels.append(label)
        doc = {"_id": ObjectId(), "filepath": f"/img/{d}.jpg", "metadata": {"width": int(RNG.integers(1, 900))}}
        if RNG.random() < 0.8:
            doc["gt"] = {"_cls": "Detections", "detections": labels}
        elif RNG.random() < 0.5:
            doc["gt"] = None
        docs.append(doc)
    return docs


def _expected_number(v):
    return np.nan if v is None else float(v)


@pytest.mark.parametrize("seed", range(5))
def test_columns_equal_pymongo_decoding(seed):
    global RNG
    RNG = np.random.default_rng(seed)
    docs = _docs(60)
    raw = [bson.encode(d) for d in docs]
    cols = read_columns(*join_documents(raw), "gt.detections", ["_id", "num", "str", "box", "any"])
    decoded = [bson.decode(r) for r in raw]
    labels = [lab for d in decoded for lab in ((d.get("gt") or {}).get("detections") or [])]
    assert cols.counts.tolist() == [len((d.get("gt") or {}).get("detections") or []) for d in decoded]
    assert cols.ids(0).tolist() == [str(lab["_id"]) for lab in labels]
    np.testing.assert_array_equal(cols.numbers(1), np.array([_expected_number(lab.get("num")) for lab in labels], dtype=float))
    from iou_audit.table.raw_bson import decode_strings

    assert decode_strings(*cols.column(2)).tolist() == [lab.get("str") for lab in labels]

    def box(v):
        if isinstance(v, list) and len(v) == 4 and all(x is None or isinstance(x, (int, float)) for x in v):
            return [np.nan if x is None else float(x) for x in v]
        return [np.nan] * 4

    np.testing.assert_array_equal(cols.boxes(3), np.array([box(lab.get("box")) for lab in labels], dtype=float).reshape(-1, 4))
    assert cols.values(4) == [lab.get("any") for lab in labels]
    assert cols.sample_strings("filepath").tolist() == [d["filepath"] for d in decoded]
    np.testing.assert_array_equal(cols.sample_numbers("metadata.width"), [d["metadata"]["width"] for d in decoded])
    assert np.isnan(cols.sample_numbers("metadata.height")).all()


def test_a_non_numeric_column_is_reported_not_misread():
    raw = bson.encode({"l": [{"c": 1.0}, {"c": "0.5"}]})
    cols = read_columns(*join_documents([raw]), "l", ["c"])
    assert cols.numbers(0) is None and cols.values(0) == [1.0, "0.5"]
