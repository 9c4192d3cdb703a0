"""A student's home: made on their first server start, with the class content copied in.

Content is copied file by file and only where the home has no file of that name: a student's edits
are never overwritten, and content the tutor adds later reaches every home at the next start.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

DATA_LINK = "class-data"


def prepare_home(home: Path, content: Path | None, data: Path | None,
                 owner: tuple[int, int] | None = None) -> list[str]:
    """Make the home (0700) and copy in what is missing; returns the paths copied, relative."""
    new = not home.exists()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if new or owner:
        os.chmod(home, 0o700)
    copied = []
    if content and content.is_dir():
        for src in sorted(content.rglob("*")):
            rel = src.relative_to(content)
            if any(part.startswith(".") for part in rel.parts) or not src.is_file():
                continue
            dest = home / rel
            if dest.exists() or dest.is_symlink():
                continue
            _mkdirs(dest.parent, home, owner)
            shutil.copyfile(src, dest)
            if owner:
                os.chown(dest, *owner)
            copied.append(str(rel))
    link = home / DATA_LINK
    if data and not link.exists() and not link.is_symlink():
        link.symlink_to(data)
        if owner:
            os.lchown(link, *owner)
    if owner:
        os.chown(home, *owner)
    return copied


def _mkdirs(d: Path, home: Path, owner) -> None:
    missing = []
    while not d.exists() and d != home:
        missing.append(d)
        d = d.parent
    for m in reversed(missing):
        m.mkdir(mode=0o755)
        if owner:
            os.chown(m, *owner)


def default_content(dir: Path, data_files: list[str]) -> Path:
    """The demo analysis notebook, for a class that names no notebooks of its own."""
    from ..demo.notebook import write_notebook
    dir.mkdir(parents=True, exist_ok=True)
    write_notebook(dir, data_files, overwrite=True)
    return dir
