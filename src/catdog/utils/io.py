"""Files written so that a kill at any moment leaves the previous complete file, and text that any name can go
into: UTF-8, with a file name's undecodable bytes (surrogate escapes) written back as the bytes they were."""

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path


def temporary(path, suffix="") -> Path:
    """A hidden temporary name beside `path`, owned by this process (`remove_stale_temporaries` knows it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def commit(tmp, path) -> None:
    """Flush `tmp` to disk and rename it over `path`, in one step."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside `path` (its folder made if missing; ending in `suffix`, for writers that
    insist on one); on success it replaces `path` in one rename, so a kill at any moment leaves the previous
    complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = temporary(path, suffix)
    try:
        yield tmp
        commit(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            from catdog.errors import CatdogError

            raise CatdogError(f"Could not write {path} ({exc.strerror}); its previous version, if any, is intact. "
                              "Free some space (or fix the permissions) and resume with ckpt_path.") from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder) -> None:
    """Delete the temporaries (`temporary`) of writers that are gone."""
    for tmp in Path(folder).glob(".*.tmp*"):
        pids = [part for part in tmp.name.split(".") if part.isdigit()]
        if pids and not _alive(int(pids[-1])):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}  # open(..., **TEXT) for text holding file names


def write_json(path, data) -> None:
    """JSON, ASCII only: a non-ASCII character, and a surrogate escape, written as a \\u escape."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="ascii")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, **TEXT)


def printable(text) -> str:
    """`text` on one line that any UTF-8 stream can write: each character that is not printable (a newline, a
    control character, a surrogate escape of an undecodable byte) written as its Python escape (\\n, \\udcff)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
