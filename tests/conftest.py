"""Shared test set-up: a private FiftyOne database per run, the plugin dir, and ../shared/data."""
import atexit
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("IOU_AUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))



def _start_private_mongod() -> str:
    """Start a mongod of our own on a free port and return its URI.

    FiftyOne's embedded database service attaches to any FiftyOne mongod already running on the
    machine, whatever FIFTYONE_DATABASE_DIR says, so a test run could land in the user's
    database. A private server, passed on as FIFTYONE_DATABASE_URI, keeps the run isolated, and
    every subprocess (App server, CLI) inherits it.
    """
    # Locate the binary without importing fiftyone: importing it reads the config, which must
    # already see FIFTYONE_DATABASE_URI.
    import importlib.util

    fiftyone_dir = os.path.dirname(importlib.util.find_spec("fiftyone").origin)
    mongod = os.path.join(fiftyone_dir, "db", "bin", "mongod")
    # A directory of our own, never FIFTYONE_DATABASE_DIR (a FiftyOne service may hold its lock).
    dbpath = tempfile.mkdtemp(prefix="iou-audit-db-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [mongod, "--dbpath", dbpath, "--port", str(port),
         "--bind_ip", "127.0.0.1", "--quiet", "--logpath", os.path.join(dbpath, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            sys.exit(f"private mongod exited with {proc.returncode}; see {dbpath}/mongod.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                sys.exit(f"private mongod did not listen on port {port} within 60 s")
            time.sleep(0.2)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(dbpath, ignore_errors=True)

    atexit.register(stop)
    return f"mongodb://127.0.0.1:{port}"


# Must be set before fiftyone is imported anywhere.
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(REPO))
if "FIFTYONE_DATABASE_URI" not in os.environ:
    assert "fiftyone" not in sys.modules, "fiftyone imported before the test database was chosen"
    os.environ["FIFTYONE_DATABASE_URI"] = _start_private_mongod()


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
