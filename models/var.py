"""Where rogatory keeps its files ($ROGATORY_VAR, else ./var), private to the user it runs as.

The ledger file, the outbox, keys and caches may hold what only the application should read:
folders are created 0700 and files 0600, whatever the umask.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path


def var_dir() -> Path:
    """$ROGATORY_VAR, else ./var, created 0700 if missing."""
    return private_folder(Path(os.environ.get("ROGATORY_VAR", "var")))


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner can enter (created, with its parents, if missing)."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """`path` created empty with mode 0600 if missing, so whatever writes it next (SQLite, an
    append) keeps that mode; an existing file is left as it is."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path
