"""Shared pieces of the relabel tests: a small dataset on real PNG files with a duplicate and three
annotators, and ``DiskBackend``, a real FiftyOne ``AnnotationBackend`` that "uploads" to a
directory (one JSON file per run) and "downloads" whatever an annotator (the test) wrote back into
that file -- every step of FiftyOne's annotate / load_annotations runs except the network call."""
from __future__ import annotations

import json
import os

import fiftyone as fo
import fiftyone.core.media as fomm
import fiftyone.utils.annotations as foua
import numpy as np
from PIL import Image

BACKEND = "iou_audit_disk_test"


def make_dataset(image_dir) -> fo.Dataset:
    """3 samples on 100x80 PNGs. gt has an exact duplicate (sample 0), attributes and tags on
    labels; ann_b and ann_c are two more annotators: on sample 0 both call gt's "dog" a "cat",
    on sample 1 they draw the box shifted."""
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []

    def det(label, box, **kw):
        return fo.Detection(label=label, bounding_box=box, **kw)

    layouts = [
        ([det("cat", [0.1, 0.1, 0.2, 0.2], confidence=0.9, occluded=True, note="a", tags=["keep"]),
          det("cat", [0.1, 0.1, 0.2, 0.2], note="copy"),
          det("dog", [0.6, 0.6, 0.2, 0.2], iscrowd=0)],
         [det("cat", [0.11, 0.1, 0.2, 0.2]), det("cat", [0.6, 0.61, 0.2, 0.2])],
         [det("cat", [0.1, 0.11, 0.2, 0.2]), det("cat", [0.61, 0.6, 0.2, 0.2])]),
        ([det("cat", [0.3, 0.3, 0.3, 0.3], note="shifted")],
         [det("cat", [0.36, 0.3, 0.3, 0.3])],
         [det("cat", [0.35, 0.31, 0.3, 0.3])]),
        ([det("dog", [0.5, 0.1, 0.3, 0.4])],
         [det("dog", [0.5, 0.1, 0.3, 0.4])],
         [det("dog", [0.5, 0.1, 0.3, 0.4])]),
    ]
    for i, (gt, b, c) in enumerate(layouts):
        path = os.path.join(image_dir, f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=path, gt=fo.Detections(detections=gt),
                                 ann_b=fo.Detections(detections=b), ann_c=fo.Detections(detections=c)))
    ds = fo.Dataset()
    ds.add_samples(samples)
    ds.compute_metadata()
    return ds


def raw_labels(ds, field="gt") -> list[list[bytes]]:
    """Each sample's label list of ``field`` as the database holds it (BSON bytes, in order)."""
    from bson.raw_bson import RawBSONDocument

    from iou_audit import fiftyone_private as fop

    coll = fop.raw_sample_collection(ds, RawBSONDocument)
    return [[bytes(d.raw) for d in (doc[field]["detections"] if doc.get(field) else [])]
            for doc in coll.find({}, {field: 1}, sort=[("_id", 1)])]


class DiskBackendConfig(foua.AnnotationBackendConfig):
    """``upload_dir``: where each run's upload is written as ``<anno_key>.json``."""

    def __init__(self, name, label_schema, media_field="filepath", upload_dir=None, **kwargs):
        super().__init__(name, label_schema, media_field=media_field, **kwargs)
        self.upload_dir = upload_dir


class DiskBackend(foua.AnnotationBackend):
    @property
    def supported_media_types(self):
        return [fomm.IMAGE]

    @property
    def supported_label_types(self):
        return ["detections", "detection", "polylines", "polygons"]

    @property
    def supported_scalar_types(self):
        return []

    @property
    def supported_attr_types(self):
        return ["text"]

    @property
    def supports_keyframes(self):
        return False

    @property
    def supports_video_sample_fields(self):
        return False

    @property
    def requires_label_schema(self):
        return True

    def recommend_attr_tool(self, name, value):
        return {"type": "text", "values": []}

    def requires_attr_values(self, attr_type):
        return False

    def upload_annotations(self, samples, anno_key, launch_editor=False):
        (field, info), = self.config.label_schema.items()
        list_path = f"{field}.detections"
        ids, fps, labels = samples.values(["id", "filepath", list_path])
        upload = {"label_schema": self.config.label_schema, "samples": [
            {"sample_id": sid, "filepath": fp, "labels": [json.loads(d.to_json()) for d in (dets or [])]}
            for sid, fp, dets in zip(ids, fps, labels)]}
        path = os.path.join(self.config.upload_dir, f"{anno_key}.json")
        with open(path, "w") as f:
            json.dump(upload, f)
        id_map = {field: {sid: [d.id for d in (dets or [])] for sid, dets in zip(ids, labels)}}
        return DiskResults(samples, self.config, anno_key, id_map, path, backend=self)

    def download_annotations(self, results):
        with open(results.upload_path) as f:
            upload = json.load(f)
        (field, info), = self.config.label_schema.items()
        out = {}
        for s in upload["samples"]:
            out[s["sample_id"]] = {}
            for d in s["labels"]:
                label = fo.Detection.from_dict(d)
                out[s["sample_id"]][label.id] = label
        return {field: {"detections": out}}


class DiskResults(foua.AnnotationResults):
    def __init__(self, samples, config, anno_key, id_map, upload_path, backend=None):
        super().__init__(samples, config, anno_key, id_map, backend=backend)
        self.upload_path = upload_path

    def launch_editor(self):
        pass

    def cleanup(self):
        if os.path.exists(self.upload_path):
            os.remove(self.upload_path)

    @classmethod
    def _from_dict(cls, d, samples, config, anno_key):
        return cls(samples, config, anno_key, d["id_map"], d["upload_path"])


def register_backend(upload_dir) -> None:
    """Declare the disk backend in FiftyOne's annotation config, as a user's config file would."""
    fo.annotation_config.backends[BACKEND] = {"config_cls": f"{__name__}.DiskBackendConfig",
                                              "upload_dir": str(upload_dir)}
