"""A disk cache for arrays computed from data (decoded images, backbone features), written atomically."""

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from catdog.data.images import decode_images
from catdog.errors import CatdogError
from catdog.io import atomic_path

log = logging.getLogger(__name__)

_FORMAT = 1


class DoNotCache(dict):
    """What `compute` returns for arrays that are right for this run but must not be cached (a transient error)."""


def cached_arrays(cache_dir, name: str, key: str, compute) -> dict:
    """`compute()` -> {name: array}, stored once as `cache_dir/<name>-<key>.npz` and read back after.

    The cache is optional: a folder that cannot be written (read-only, full, a file) is a warning, and the
    run goes on with the arrays it computed. Temporaries left by killed writers are removed."""
    file = Path(cache_dir).expanduser() / f"{name}-{key}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            log.warning("Ignoring unreadable cache file %s (%s); computing again.", file, exc)
    arrays = compute()
    if isinstance(arrays, DoNotCache):
        return dict(arrays)
    try:
        remove_stale_temporaries(file.parent)
        with atomic_path(file) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except (OSError, CatdogError) as exc:
        log.warning("Could not write the cache file %s (%s); going on without it.", file, exc)
        return arrays
    log.info("Cached %s in %s", name, file)
    return arrays


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporaries of atomic writes (.NAME.PID.tmp, .NAME.PID.tmp.keras) whose writer is gone."""
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


def _files_key(paths, image_size, max_pixels) -> str:
    h = hashlib.sha256(json.dumps([_FORMAT, list(image_size), max_pixels]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached_decode(paths, image_size, max_pixels, cache_dir=None):
    """`decode_images`, read from `cache_dir` when this exact file list was decoded before."""
    if not cache_dir:
        return decode_images(paths, image_size, max_pixels)

    def compute():
        transient = set()
        images, good, bad = decode_images(paths, image_size, max_pixels, transient=transient)
        arrays = {"images": images, "good": good, "bad": np.asarray(json.dumps(bad))}
        if transient:
            log.warning("Not caching this decode: %d file(s) failed for a reason of the moment (%s); the next run "
                        "tries them again.", len(transient), ", ".join(sorted(transient)[:5]))
            return DoNotCache(arrays)
        return arrays

    name = f"images-{image_size[0]}x{image_size[1]}"
    z = cached_arrays(cache_dir, name, _files_key(paths, image_size, max_pixels), compute)
    return z["images"], z["good"], json.loads(str(z["bad"]))
