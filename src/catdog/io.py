"""Files written so that a kill at any moment leaves the previous complete file, and text that any name can go
into: UTF-8, with a file name's undecodable bytes (surrogate escapes) written back as the bytes they were."""

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (its folder made if missing); on success it replaces `path` in one
    rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            from catdog.errors import CatdogError

            raise CatdogError(f"Could not write {path} ({exc.strerror}); its previous version, if any, is intact. "
                              "Free some space (or fix the permissions) and resume with ckpt_path.") from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


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
