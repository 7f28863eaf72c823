"""FiftyOne plugin entry (``py_entry`` in fiftyone.yml).

Operators are thin forms over ``iou_audit`` library calls; each module ``plugin/<name>.py`` lists its
classes in ``OPERATORS``. The repo root is not on ``sys.path`` here: ``iou_audit`` must be installed
(``pip install -e .``) in the App server's environment.
"""
import importlib
import pkgutil

_MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def register(p):
    for name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for operator in getattr(module, "OPERATORS", ()):
            p.register(operator)
