"""Keep every file an export writes inside the directory the user chose.

The rules, checked before anything is written:
- the chosen directory has no ``..`` component; relative paths inside it (labels/media paths given
  to an exporter) are relative, without ``..``, and resolve inside it;
- no symlink already inside the directory points outside it (an exporter writing into
  ``dir/data`` would follow it);
- the directory, if it exists, is a directory.
"""
from __future__ import annotations

import os
import pathlib


class UnsafeExportPath(ValueError):
    """A path that would let an export write outside the chosen directory."""


def _has_parent_ref(path: str) -> bool:
    return ".." in pathlib.PurePath(path).parts


def export_root(path) -> pathlib.Path:
    """The resolved export directory (symlinks in the chosen path itself are followed: that is the
    directory the user chose); refuses ``..`` and a path that exists but is not a directory.

    Example:
        >>> export_root("/tmp/a/../b")
        Traceback (most recent call last):
        ...
        iou_audit.relabel.paths.UnsafeExportPath: export directory '/tmp/a/../b' contains '..'; give it without '..'
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise UnsafeExportPath(f"export directory must be a non-empty path, got {path!r}")
    path = os.path.expanduser(str(path))
    if _has_parent_ref(path):
        raise UnsafeExportPath(f"export directory {path!r} contains '..'; give it without '..'")
    root = pathlib.Path(os.path.realpath(os.path.abspath(path)))
    if root.exists() and not root.is_dir():
        raise UnsafeExportPath(f"export directory {str(root)!r} exists and is not a directory")
    return root


def inside(root: pathlib.Path, relative: str, what: str) -> pathlib.Path:
    """``root / relative`` resolved, refusing absolute paths, ``..`` and symlinks leading outside.

    Example:
        >>> inside(pathlib.Path("/tmp/x"), "labels.json", "labels_path").as_posix()
        '/tmp/x/labels.json'
    """
    if not isinstance(relative, str) or not relative.strip():
        raise UnsafeExportPath(f"{what} must be a non-empty relative path, got {relative!r}")
    if os.path.isabs(relative) or relative.startswith("~"):
        raise UnsafeExportPath(f"{what} {relative!r} is absolute; give a path relative to the export directory")
    if _has_parent_ref(relative):
        raise UnsafeExportPath(f"{what} {relative!r} contains '..'; it must stay inside the export directory")
    target = pathlib.Path(os.path.realpath(root / relative))
    if not is_within(target, root):
        raise UnsafeExportPath(f"{what} {relative!r} resolves to {str(target)!r}, outside the export directory "
                               f"{str(root)!r} (a symlink?)")
    return target


def is_within(path: pathlib.Path, root: pathlib.Path) -> bool:
    """Whether resolved ``path`` is ``root`` or below it."""
    return path == root or root in path.parents


def escaping_symlinks(root: pathlib.Path) -> list[str]:
    """Symlinks under ``root`` whose target resolves outside it (sorted)."""
    out = []
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked dirs
        for name in dirnames + filenames:
            p = pathlib.Path(dirpath) / name
            if p.is_symlink() and not is_within(pathlib.Path(os.path.realpath(p)), root):
                out.append(str(p))
    return sorted(out)


def check_no_escape(root: pathlib.Path) -> None:
    """Refuse a directory holding symlinks to outside it, naming them."""
    bad = escaping_symlinks(root)
    if bad:
        raise UnsafeExportPath(f"export directory {str(root)!r} holds symlinks pointing outside it: {bad[:5]}; "
                               "an export could write through them; remove them or choose another directory")
