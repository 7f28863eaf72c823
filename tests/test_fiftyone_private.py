"""The private FiftyOne/mongoengine members behind ``iou_audit.fiftyone_private`` still exist, have
the signatures the adapter calls them with, and behave as it relies on (small real datasets).

A failure names the member and the installed FiftyOne version: update the one adapter function
that uses it (and the version pin in pyproject.toml), not the call sites.
"""
import gc
import importlib
import inspect
import io
import pathlib
import tokenize

import pytest

fo = pytest.importorskip("fiftyone")

from iou_audit import fiftyone_private as fop

VERSION = fop.fiftyone_version()
REPO = pathlib.Path(__file__).resolve().parents[1]


def _owner(path: str):
    """A module or a class given by dotted path."""
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def private(owner: str, attr: str):
    """The raw attribute (properties unresolved), or a failure naming it and the FiftyOne version."""
    obj = _owner(owner)
    for klass in (inspect.getmro(obj) if inspect.isclass(obj) else [obj]):
        if attr in vars(klass):
            return vars(klass)[attr]
    if inspect.isclass(obj) and attr in vars(type(obj)):  # metaclass members (Sample._reload_docs)
        return vars(type(obj))[attr]
    pytest.fail(f"FiftyOne {VERSION}: {owner}.{attr} no longer exists; iou_audit/fiftyone_private.py "
                f"uses it (see its USED list)")


def check_params(owner: str, attr: str, *names: str) -> None:
    """The callable ``owner.attr`` accepts parameters ``names`` (after self/cls)."""
    func = private(owner, attr)
    func = getattr(func, "__func__", func)
    params = list(inspect.signature(func).parameters)
    missing = [n for n in names if n not in params]
    if missing:
        pytest.fail(f"FiftyOne {VERSION}: {owner}.{attr}{inspect.signature(func)} lacks parameter(s) "
                    f"{missing} that iou_audit/fiftyone_private.py passes")


def check_property(owner: str, attr: str) -> None:
    if not isinstance(private(owner, attr), property):
        pytest.fail(f"FiftyOne {VERSION}: {owner}.{attr} is no longer a property; "
                    f"iou_audit/fiftyone_private.py reads it as one")


def fail_unless(cond, member: str, what: str) -> None:
    if not cond:
        pytest.fail(f"FiftyOne {VERSION}: {member} changed behaviour: {what} "
                    f"(iou_audit/fiftyone_private.py relies on it)")


@pytest.mark.parametrize("owner,attr", fop.USED, ids=[f"{o}.{a}" for o, a in fop.USED])
def test_used_member_exists(owner, attr):
    if owner.startswith("mongoengine.base.document.BaseDocument"):
        # instance attributes of every mongoengine document: checked on a label below
        label = fo.Detection(label="x")
        fail_unless(hasattr(label, attr), f"mongoengine BaseDocument.{attr}", "missing on a Detection")
        return
    if attr == "_doc" and owner.endswith("Dataset"):  # instance attribute of fo.Dataset
        ds = fo.Dataset()
        try:
            fail_unless(hasattr(getattr(ds, "_doc", None), "id"), "fo.Dataset._doc.id", "missing on a Dataset")
        finally:
            ds.delete()
        return
    if attr == "_doc":  # instance attribute of fo.Sample
        fail_unless(hasattr(fo.Sample(filepath="/a.jpg"), "_doc"), "fo.Sample._doc", "missing on a Sample")
        return
    private(owner, attr)


def test_signatures():
    sc = "fiftyone.core.collections.SampleCollection"
    for name in ("_dataset", "_root_dataset", "_is_patches", "_is_frames", "_is_clips"):
        check_property(sc, name)
    for name in ("_sample_collection", "_sample_collection_name"):
        check_property("fiftyone.core.dataset.Dataset", name)
    fail_unless(inspect.isdatadescriptor(private("fiftyone.core.dataset.Dataset", "_sample_doc_cls")),
                "Dataset._sample_doc_cls", "no longer an attribute (slot) of every Dataset")
    check_params(sc, "_handle_db_field", "path")
    check_params(sc, "_pipeline", "pipeline")
    check_params(sc, "_aggregate", "pipeline")
    check_params("fiftyone.core.dataset.Dataset", "_merge_sample_field_schema", "schema")
    check_params("fiftyone.core.dataset.Dataset", "_reload", "hard")
    check_params("fiftyone.core.odm.mixins.DatasetMixin", "_delete_fields", "paths", "error_level")
    check_params("fiftyone.core.odm.database", "aggregate", "collection", "pipelines")
    check_params("fiftyone.core.odm.utils", "create_field", "name", "ftype")
    check_params("fiftyone.core.sample.Sample", "_reload_docs", "collection_name", "sample_ids")
    check_params("fiftyone.core.sample.Sample", "_purge_fields", "collection_name", "field_names")


@pytest.fixture
def ds():
    samples = [fo.Sample(filepath=f"/p/{i}.jpg", n=i,
                         gt=fo.Detections(detections=[fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2]),
                                                      fo.Detection(label="b", bounding_box=[0.5, 0.5, 0.2, 0.2])]))
               for i in range(4)]
    dataset = fo.Dataset()
    dataset.add_samples(samples, progress=False)
    yield dataset, samples  # the list keeps the in-memory samples alive
    dataset.delete()


def test_collections_and_views(ds):
    ds, held_list = ds
    view = ds.match(fo.ViewField("n") >= 2)
    fail_unless(fop.source_dataset(view) is ds and fop.root_dataset(view) is ds, "_dataset/_root_dataset",
                "a view's dataset is not the dataset")
    patches = ds.to_patches("gt")
    fail_unless(fop.root_dataset(patches) is ds and fop.source_dataset(patches) is not ds,
                "_dataset/_root_dataset", "a patches view must be served by its own dataset, rooted in ds")
    fail_unless(fop.is_generated_view(patches) and not fop.is_generated_view(view) and not fop.is_generated_view(ds),
                "_is_patches/_is_frames/_is_clips", "patches view not recognised (or a plain view taken for one)")
    fail_unless(fop.handle_db_field(ds, "gt.detections.id") == "gt.detections._id", "_handle_db_field",
                "'gt.detections.id' does not map to 'gt.detections._id'")
    pipeline = fop.view_pipeline(view, [{"$project": {"n": 1}}])
    fail_unless(pipeline[-1] == {"$project": {"n": 1}} and len(pipeline) > 1, "_pipeline",
                "the view's stages followed by ours expected")
    rows = list(fop.aggregate(view, [{"$project": {"n": 1}}]))
    fail_unless(sorted(r["n"] for r in rows) == [2, 3], "_aggregate", "the view's documents as dicts expected")
    fail_unless(fop.raw_sample_collection(ds).count_documents({}) == 4, "Dataset._sample_collection",
                "not the collection of the dataset's samples")
    fail_unless(fop.raw_sample_collection(patches).count_documents({}) == 8, "_dataset._sample_collection",
                "a patches view's collection must hold its patches")
    from bson.raw_bson import RawBSONDocument

    raw = list(fop.aggregate_raw(view, [{"$project": {"n": 1}}], document_class=RawBSONDocument))
    fail_unless(len(raw) == 2 and all(isinstance(d, RawBSONDocument) for d in raw),
                "fiftyone.core.odm.database.aggregate", "raw BSON documents of the view expected")
    fail_unless(fop.sample_collection_name(ds) == fop.raw_sample_collection(ds).name, "_sample_collection_name",
                "differs from the collection's name")


def test_schema_and_fields(ds):
    ds, held_list = ds
    field = fop.create_field("score", fo.FloatField)
    fail_unless(isinstance(field, fo.FloatField) and field.name == "score", "odm.utils.create_field",
                "a FloatField named 'score' expected")
    fop.merge_sample_field_schema(ds, {"score": field, "gt.detections.q": fop.create_field("q", fo.IntField)})
    fail_unless(isinstance(ds.get_field("score"), fo.FloatField) and isinstance(ds.get_field("gt.detections.q"), fo.IntField),
                "Dataset._merge_sample_field_schema", "fields not declared")
    ds.set_values("score", [1.0, 2.0, 3.0, 4.0])
    fop.delete_sample_fields(ds, ["score"])
    fail_unless(ds.get_field("score") is None, "DatasetMixin._delete_fields", "field still in the schema")
    fail_unless(fop.raw_sample_collection(ds).count_documents({"score": {"$exists": True}}) == 0,
                "DatasetMixin._delete_fields", "values still stored")
    fail_unless(all("score" not in fop.backing_data(s) for s in held_list), "Sample._purge_fields",
                "in-memory samples still hold the field")


def test_in_memory_samples(ds):
    ds, held_list = ds
    held = fop.held_samples(ds)
    fail_unless(set(held) == {s.id for s in held_list} and all(held[s.id] is s for s in held_list),
                "Sample._instances", "the added fo.Sample objects are not the registered in-memory samples")
    s = held_list[0]
    fail_unless(fop.backing_data(s)["filepath"] == s.filepath, "Sample._doc._data", "field values expected")
    fail_unless(fop.has_declared_field(s, "n") and not fop.has_declared_field(s, "nope"), "Sample._doc._fields",
                "declared fields expected")
    from bson import ObjectId

    fop.raw_sample_collection(ds).update_one({"_id": ObjectId(s.id)}, {"$set": {"n": 41}})
    fop.reload_samples(ds, [s.id])
    fail_unless(s.n == 41, "Sample._reload_docs", "a held sample was not reloaded")
    del held, s
    held_list.clear()
    gc.collect()
    fail_unless(fop.held_samples(ds) == {}, "Sample._instances", "released samples are still registered")


def test_label_values_in_place(ds):
    ds, held_list = ds
    s = held_list[1]
    label = s.gt.detections[0]
    fail_unless(fop.label_data(label)["id"] == label.id, "mongoengine _data['id']", "the label id (str) expected")
    from bson import ObjectId

    # the adapter's contract: the values are already stored; set_label_value mirrors them in memory
    fop.raw_sample_collection(ds).update_one({"_id": ObjectId(s.id)},
                                             {"$set": {"gt.detections.0.q": 7, "gt.detections.0.tags": ["t"]}})
    fop.set_label_value(label, "q", 7)
    fop.set_label_value(label, "tags", ["t"])
    fail_unless(label.q == 7 and label["q"] == 7 and label.has_field("q") and label.to_dict()["q"] == 7,
                "mongoengine dynamic fields (_data/_dynamic_fields/_fields_ordered/__dict__)",
                "an attribute set in place is not seen like a loaded one")
    fail_unless(label.tags == ["t"], "mongoengine _data", "a declared field set in place is not seen")
    fail_unless(not s._doc._get_changed_fields(),
                "mongoengine _changed_fields", "values set in place are marked as changed")
    s["n"] = 100  # an unrelated edit: saving writes the whole sample's changes, ours included as they are
    s.save()
    stored = ds.select(s.id).first()
    fail_unless(stored.n == 100 and stored.gt.detections[0].to_dict() == label.to_dict(), "mongoengine save",
                "saving a sample refreshed in place lost or changed a value")
    fop.unset_label_value(label, "q")
    fail_unless(not label.has_field("q") and "q" not in label.to_dict(), "mongoengine dynamic fields",
                "an attribute removed in place is still seen")


# The FiftyOne private members the adapter wraps; none may be used anywhere else.
PRIVATE_NAMES = {
    "_pipeline", "_aggregate", "_handle_db_field", "_handle_db_fields", "_merge_sample_field_schema",
    "_reload_docs", "_reset_docs", "_is_patches", "_is_frames", "_is_clips", "_is_generated",
    "_sample_collection", "_sample_collection_name", "_frame_collection", "_root_dataset", "_dataset",
    "_sample_doc_cls", "_instances", "_purge_fields", "_delete_fields", "_reload",
}


def test_no_private_fiftyone_calls_outside_the_adapter():
    """Attribute accesses ``x._name`` for FiftyOne private names, in code (not strings/comments)."""
    hits = []
    for path in sorted([*REPO.joinpath("iou_audit").rglob("*.py"), *REPO.joinpath("plugin").rglob("*.py")]):
        if path.name == "fiftyone_private.py":
            continue
        tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
        for prev, tok in zip(tokens, tokens[1:]):
            if prev.string == "." and tok.type == tokenize.NAME and tok.string in PRIVATE_NAMES:
                hits.append(f"{path.relative_to(REPO)}:{tok.start[0]}: .{tok.string}")
    assert not hits, "private FiftyOne members used outside iou_audit/fiftyone_private.py:\n" + "\n".join(hits)
