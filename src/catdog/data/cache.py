"""A disk cache of decoded images, keyed by file list, sizes, mtimes and target size."""

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from catdog.data.images import decode_images
from catdog.io import atomic_path

log = logging.getLogger(__name__)

_FORMAT = 1


def _key(paths, image_size, max_pixels) -> str:
    h = hashlib.sha256(json.dumps([_FORMAT, list(image_size), max_pixels]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached_decode(paths, image_size, max_pixels, cache_dir=None):
    """`decode_images`, read from `cache_dir` when this exact file list was decoded before."""
    if not cache_dir:
        return decode_images(paths, image_size, max_pixels)
    file = Path(cache_dir) / f"images-{image_size[0]}x{image_size[1]}-{_key(paths, image_size, max_pixels)}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                bad = json.loads(str(z["bad"]))
                return z["images"], z["good"], bad
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Ignoring unreadable image cache %s (%s); decoding again.", file, exc)
    images, good, bad = decode_images(paths, image_size, max_pixels)
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, good=good, bad=np.asarray(json.dumps(bad)))
    log.info("Cached %d decoded images in %s", len(images), file)
    return images, good, bad
