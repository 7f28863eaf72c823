"""Every private FiftyOne (and mongoengine) attribute iou-audit relies on, in one place.

FiftyOne's public API has no streamed raw aggregation, no database-path lookup, no bulk schema
merge and no cheap way to refresh in-memory samples after a server-side write, so the table
readers/writers use a few private members. They are wrapped here, one small function each, so
that a FiftyOne upgrade that renames or changes one breaks one function (and
``tests/test_fiftyone_private.py``, which checks each member's existence, signature and behaviour
and names the member and the FiftyOne version when it fails), not call sites spread over the code.

Known to work with the FiftyOne versions pinned in ``pyproject.toml``. Nothing outside this module
may touch an underscored FiftyOne attribute.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

#: The private members used below, ``(owner, attribute)``; checked by tests/test_fiftyone_private.py.
USED = (
    ("fiftyone.core.collections.SampleCollection", "_dataset"),
    ("fiftyone.core.collections.SampleCollection", "_root_dataset"),
    ("fiftyone.core.collections.SampleCollection", "_is_patches"),
    ("fiftyone.core.collections.SampleCollection", "_is_frames"),
    ("fiftyone.core.collections.SampleCollection", "_is_clips"),
    ("fiftyone.core.collections.SampleCollection", "_handle_db_field"),
    ("fiftyone.core.collections.SampleCollection", "_pipeline"),
    ("fiftyone.core.collections.SampleCollection", "_aggregate"),
    ("fiftyone.core.dataset.Dataset", "_sample_collection"),
    ("fiftyone.core.dataset.Dataset", "_sample_collection_name"),
    ("fiftyone.core.dataset.Dataset", "_merge_sample_field_schema"),
    ("fiftyone.core.dataset.Dataset", "_sample_doc_cls"),
    ("fiftyone.core.dataset.Dataset", "_reload"),
    ("fiftyone.core.dataset.Dataset", "_doc"),
    ("fiftyone.core.odm.mixins.DatasetMixin", "_delete_fields"),
    ("fiftyone.core.sample.Sample", "_purge_fields"),
    ("fiftyone.core.odm.database", "aggregate"),
    ("fiftyone.core.odm.utils", "create_field"),  # public name in a module outside the public API
    ("fiftyone.core.sample.Sample", "_instances"),
    ("fiftyone.core.sample.Sample", "_reload_docs"),
    ("fiftyone.core.sample.Sample", "_doc"),
    ("mongoengine.base.document.BaseDocument", "_data"),
    ("mongoengine.base.document.BaseDocument", "_fields"),
    ("mongoengine.base.document.BaseDocument", "_fields_ordered"),
    ("mongoengine.base.document.BaseDocument", "_dynamic_fields"),
)


def fiftyone_version() -> str:
    """The installed FiftyOne version (for error messages)."""
    import fiftyone

    return getattr(fiftyone, "__version__", "unknown")


# --- collections and views ---------------------------------------------------------------------

def source_dataset(samples):
    """The dataset whose sample collection serves ``samples`` (``SampleCollection._dataset``): the
    dataset itself, a view's dataset, or the generated dataset of a patches/frames/clips view."""
    return samples._dataset


def root_dataset(samples):
    """The dataset ``samples`` derive from (``SampleCollection._root_dataset``): for a patches,
    frames or clips view, the dataset whose samples it was generated from."""
    return samples._root_dataset


def is_generated_view(samples) -> bool:
    """Whether ``samples`` is a patches, frames or clips view (``_is_patches`` / ``_is_frames`` /
    ``_is_clips``): its documents are not the root dataset's samples."""
    return bool(samples._is_patches or samples._is_frames or samples._is_clips)


def handle_db_field(samples, path: str) -> str:
    """The database path of field path ``path`` (``_handle_db_field``), e.g. ``"gt.detections.id"``
    -> ``"gt.detections._id"``."""
    return samples._handle_db_field(path)


def view_pipeline(samples, stages: list[dict]) -> list[dict]:
    """The aggregation pipeline of ``samples`` (its view stages) followed by ``stages``
    (``SampleCollection._pipeline``), to run on :func:`raw_sample_collection`."""
    return samples._pipeline(pipeline=stages)


def aggregate(samples, stages: list[dict]) -> Iterator[dict]:
    """Run the view's pipeline plus ``stages``; an iterator of plain dicts
    (``SampleCollection._aggregate``)."""
    return samples._aggregate(pipeline=stages)


def raw_sample_collection(samples, document_class=None):
    """The pymongo collection holding the documents of ``samples`` (``Dataset._sample_collection`` of
    :func:`source_dataset`), optionally decoding documents as ``document_class`` (e.g.
    ``bson.raw_bson.RawBSONDocument``)."""
    coll = source_dataset(samples)._sample_collection
    if document_class is not None:
        from bson.codec_options import CodecOptions

        coll = coll.with_options(codec_options=CodecOptions(document_class=document_class))
    return coll


def aggregate_raw(samples, stages: list[dict], document_class=None):
    """A cursor over the view's pipeline plus ``stages`` run on :func:`raw_sample_collection`
    through ``fiftyone.core.odm.database.aggregate`` (FiftyOne's own runner: session/timeout
    handling), documents decoded as ``document_class`` (default: dicts)."""
    import fiftyone.core.odm.database as food

    return food.aggregate(raw_sample_collection(samples, document_class), view_pipeline(samples, stages))


def reload_dataset_doc(dataset) -> None:
    """Reload the dataset document (runs, saved views, field list) from the database, not its
    in-memory samples (``Dataset._reload()``; ``Dataset.reload`` would also reload every held
    sample, and ``hard=True`` swaps the sample document class under the held samples)."""
    dataset._reload()


def dataset_id(dataset) -> str:
    """The dataset document's id (``Dataset._doc.id``), stable across renames."""
    return str(dataset._doc.id)


def sample_collection_name(dataset) -> str:
    """Name of the MongoDB collection of the dataset's samples (``Dataset._sample_collection_name``)."""
    return dataset._sample_collection_name


def merge_sample_field_schema(dataset, fields: dict) -> None:
    """Declare ``{path: fiftyone field}`` on the dataset in one dataset-document save
    (``Dataset._merge_sample_field_schema``; ``add_sample_field`` saves once per path)."""
    dataset._merge_sample_field_schema(fields)


def create_field(name: str, ftype):
    """A FiftyOne field instance of class ``ftype`` named ``name``, to declare with
    :func:`merge_sample_field_schema` (``fiftyone.core.odm.utils.create_field``)."""
    from fiftyone.core.odm.utils import create_field as _create_field

    return _create_field(name, ftype)


def delete_sample_fields(dataset, names: list[str]) -> None:
    """Delete top-level sample fields ``names`` (data and schema) as ``Dataset.delete_sample_fields``
    does (``_sample_doc_cls._delete_fields``: one ``$unset`` over the collection, schema, indexes,
    App config; ``Sample._purge_fields`` drops them from in-memory samples; ``Dataset._reload``),
    without its last step, ``Sample._reload_docs`` of every in-memory sample (~16 ms each: minutes
    when the caller holds its samples). The caller refreshes what changed in them (their
    ``last_modified_at``, bumped on every sample) itself."""
    import fiftyone.core.sample as fos

    dataset._sample_doc_cls._delete_fields(list(names), error_level=0)
    fos.Sample._purge_fields(sample_collection_name(dataset), list(names))
    dataset._reload()


# --- in-memory Sample objects ------------------------------------------------------------------

def held_samples(dataset) -> dict:
    """``{sample_id: fo.Sample}`` of the dataset's samples currently in memory (FiftyOne keeps one
    ``Sample`` object per sample id in a weak-value registry, ``Sample._instances``). A snapshot:
    the returned dict holds them alive until it is dropped."""
    import fiftyone.core.sample as fos

    registry = fos.Sample._instances.get(sample_collection_name(dataset))  # .get: do not add a key
    return dict(registry.items()) if registry else {}


def reload_samples(dataset, sample_ids: Iterable[str] | None = None) -> None:
    """FiftyOne's own refresh of in-memory samples (``Sample._reload_docs``): one mongoengine reload
    (~16 ms) per held sample whose id is in ``sample_ids`` (all held samples when None)."""
    import fiftyone.core.sample as fos

    fos.Sample._reload_docs(sample_collection_name(dataset), sample_ids=sample_ids)


def backing_data(sample) -> dict:
    """The field values of an in-memory ``fo.Sample`` (its mongoengine document's ``_data``), to set
    values already stored in the database without marking them as changed."""
    return sample._doc._data


def has_declared_field(sample, name: str) -> bool:
    """Whether the sample's document class declares field ``name`` (mongoengine ``_fields``): only
    then may its value be set in :func:`backing_data` directly."""
    return name in sample._doc._fields


def label_data(label) -> dict:
    """A label's (mongoengine embedded document's) ``_data``: ``{field name: value}``; its id is
    ``label_data(label)["id"]`` (a str)."""
    return label._data


def set_label_value(label, name: str, value: Any) -> None:
    """Set attribute ``name`` of an in-memory label to ``value`` (a scalar already stored in the
    database) as loading it would, but without marking it as changed (a later ``sample.save()``
    does not write it again). An attribute the label class declares (``tags``, ``confidence``) lives
    in ``_data``; an undeclared one is a mongoengine dynamic field: registered in
    ``_dynamic_fields``/``_fields_ordered`` (what ``BaseDocument.__setattr__`` does on load) and
    held both in ``_data`` and in the instance ``__dict__`` (where attribute access finds it)."""
    if name in label._fields:
        label._data[name] = value
        return
    if name not in label._dynamic_fields:
        label._dynamic_fields[name] = _dynamic_field(name)
        if name not in label._fields_ordered:
            label._fields_ordered += (name,)
    label._data[name] = value
    label.__dict__[name] = value


_DYNAMIC_FIELDS: dict = {}  # attribute name -> template DynamicField


def _dynamic_field(name: str):
    """A fresh ``DynamicField(db_field=name, null=True)`` named ``name``, as mongoengine registers
    one per document on load. Copied from a template: constructing one costs ~33 us (x 30,000
    labels: 1 s), copying its ``__dict__`` ~2 us; one object per document as mongoengine has it."""
    from mongoengine.fields import DynamicField

    template = _DYNAMIC_FIELDS.get(name)
    if template is None:
        template = _DYNAMIC_FIELDS[name] = DynamicField(db_field=name, null=True)
        template.name = name
    field = DynamicField.__new__(DynamicField)
    field.__dict__.update(template.__dict__)
    return field


def unset_label_value(label, name: str) -> None:
    """Remove dynamic attribute ``name`` from an in-memory label (as it is when absent from the
    database). Declared attributes are set to None (their value when absent)."""
    if name in label._fields:
        label._data[name] = None
    elif name in label._dynamic_fields:
        del label._dynamic_fields[name]
        label._fields_ordered = tuple(n for n in label._fields_ordered if n != name)
        label._data.pop(name, None)
        label.__dict__.pop(name, None)
