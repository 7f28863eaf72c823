"""Shared test set-up: a private FiftyOne database per run, the plugin dir, and ../shared/data."""
import os
import pathlib
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("IOU_AUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))

# Must be set before fiftyone is imported anywhere.
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(REPO))
if "FIFTYONE_DATABASE_DIR" not in os.environ:
    os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="iou-audit-db-")


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set IOU_AUDIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def dataset():
    """An empty, non-persistent FiftyOne dataset, deleted afterwards."""
    import fiftyone as fo

    ds = fo.Dataset()
    yield ds
    if not ds.deleted:
        ds.delete()
