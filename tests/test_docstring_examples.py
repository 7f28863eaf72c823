"""Every worked example in a docstring of the library runs and prints what it says.

Run in a subprocess: doctest leaves its last value in ``builtins._``, which breaks a later first
import of FiftyOne (pydash), so the examples must not share the test session's interpreter.
"""
import json
import os
import pkgutil
import subprocess
import sys

import iou_audit

RUNNER = r"""
import doctest, importlib, json, sys
import fiftyone  # imported first: see the module docstring
results = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                        verbose=False, report=True)
    results[name] = [failed, attempted]
print("RESULTS" + json.dumps(results))
"""


def _modules():
    names = []
    for info in pkgutil.walk_packages(iou_audit.__path__, "iou_audit."):
        if ".cli" in info.name or info.name.endswith(".demo"):
            continue  # entry points: exercised by test_cli and the demo
        names.append(info.name)
    return names


def test_docstring_examples_run():
    proc = subprocess.run([sys.executable, "-c", RUNNER, *_modules()], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULTS")]
    assert line, proc.stderr[-3000:]
    results = json.loads(line[0][len("RESULTS"):])
    failed = {name: f for name, (f, _) in results.items() if f}
    assert not failed, f"{failed}\n{proc.stdout[-4000:]}"
    # The worked examples are part of the contract: most modules have some.
    assert sum(a for _, a in results.values()) > 50
