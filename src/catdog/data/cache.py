"""A disk cache for arrays computed from data (decoded images, backbone features), written atomically."""

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from catdog.data.images import decode_images
from catdog.io import atomic_path

log = logging.getLogger(__name__)

_FORMAT = 1


def cached_arrays(cache_dir, name: str, key: str, compute) -> dict:
    """`compute()` -> {name: array}, stored once as `cache_dir/<name>-<key>.npz` and read back after."""
    file = Path(cache_dir).expanduser() / f"{name}-{key}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            log.warning("Ignoring unreadable cache file %s (%s); computing again.", file, exc)
    arrays = compute()
    with atomic_path(file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    log.info("Cached %s in %s", name, file)
    return arrays


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
        images, good, bad = decode_images(paths, image_size, max_pixels)
        return {"images": images, "good": good, "bad": np.asarray(json.dumps(bad))}

    name = f"images-{image_size[0]}x{image_size[1]}"
    z = cached_arrays(cache_dir, name, _files_key(paths, image_size, max_pixels), compute)
    return z["images"], z["good"], json.loads(str(z["bad"]))
