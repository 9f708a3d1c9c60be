"""Writing user-named files safely: never over the command's own input, never half-written.

Every file combiner writes at a path the user chose (bitstreams, decoded signals, eval results,
priors) goes through :func:`replacing`: the data are written to a temporary file in the same
folder, which replaces the target with ``os.replace`` only once complete. A failure or an
interruption part-way leaves the target as it was (absent, or its previous content).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from combiner.errors import OutputError


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, before any work, an output that could not be written or that is one of ``inputs``.

    The same file is recognised through symbolic links, hard links and different spellings of its
    path. Returns the output as a :class:`Path`. Raises :class:`OutputError`."""
    out = Path(output)
    if out.is_dir():
        raise OutputError(f"{out} is a folder; name an output file")
    if not out.parent.is_dir():
        raise OutputError(f"{out}: the folder {out.parent} does not exist")
    for source in inputs:
        if _same_file(Path(source), out):
            raise OutputError(f"{out} is also the input: choose another output name "
                              "(the input would be overwritten)")
    return out


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:  # unreadable: not provably the same file
        return False


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; when the block completes it replaces
    ``path`` (atomically on one file system), and when it raises it is deleted.

    The temporary name keeps the target's suffix, so writers that infer the format from it still
    work. The new file gets the permissions an ordinary ``open(path, "w")`` would give it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path))  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits of an existing ``path``, else the default for new files (umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
