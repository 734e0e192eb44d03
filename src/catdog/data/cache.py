"""Decode-once caches on disk: decoded images and backbone features as `.npy` files read by rows
(`store.RowFile`), each beside a `.json` of what the rows are, written so that a kill leaves no half file."""

import errno
import hashlib
import json
import logging
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.data import images as image_files
from catdog.data.store import RowArray, RowFile, RowWriter, compact
from catdog.errors import CatdogError
from catdog.utils.io import commit, printable, remove_stale_temporaries, temporary, write_json
from catdog.utils.progress import Progress

log = logging.getLogger(__name__)

_FORMAT = 2
_CHUNK = 1024  # images in flight at once: memory does not grow with the file list


class DoNotCache(dict):
    """What `fill` returns when its rows are right for this run but must not be cached (a transient error)."""


def cached_rows(cache_dir, name: str, key: str, shape, dtype, fill):
    """(rows, meta): an array of `shape` filled by `fill(store) -> meta` (a dict; `meta["rows"]`, when there,
    is how many leading rows are kept), stored once as `cache_dir/<name>-<key>.npy` + `.json` and read back by
    rows after. Without `cache_dir` the array is in memory.

    The cache is optional: a folder that cannot be written (read-only, full, a file) is a warning, and the run
    goes on in memory. Temporaries left by killed writers are removed."""
    if not cache_dir:
        return _in_memory(shape, dtype, fill)
    file = Path(cache_dir).expanduser() / f"{name}-{key}.npy"
    meta_file = file.with_suffix(".json")
    if file.is_file() and meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            rows = RowFile(file, stop=meta.get("rows"))
            if rows.shape[1:] != tuple(shape[1:]) or len(rows) != meta.get("rows", shape[0]):
                log.warning("Ignoring the cache file %s: its shape %s is not %s; computing again.", file,
                            rows.shape, shape)
            elif "check" in meta and not _intact(rows, meta["check"]):  # caches of earlier versions carry none
                log.warning("The cache file %s is damaged (its size or its rows are not what was written); "
                            "computing it again.", file)
            else:
                return rows, meta
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable cache file %s (%s); computing again.", file, exc)
    tmp = temporary(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(file.parent)
        needed, free = math.prod(shape) * np.dtype(dtype).itemsize, shutil.disk_usage(file.parent).free
        if free < needed * 1.05 + 2**20:  # known before anything is computed: computed once, in memory
            log.warning("Not caching %s: not enough free space in %s (%.0f MB needed, %.0f MB free); going on in "
                        "memory.", name, file.parent, needed / 2**20, free / 2**20)
            return _in_memory(shape, dtype, fill)
        store = RowWriter(tmp, shape, dtype)
    except OSError as exc:
        log.warning("Could not write the cache file %s (%s); going on without it, in memory.", file, exc)
        return _in_memory(shape, dtype, fill)
    try:
        meta = fill(store)
        store.close()
        rows = RowFile(tmp, stop=meta.get("rows"))
        if isinstance(meta, DoNotCache):
            return np.asarray(rows), dict(meta)  # read into memory: the file is not kept
        meta = {**meta, "check": rows.check()}
        commit(tmp, file)
        write_json(meta_file, meta)
    except (OSError, CatdogError) as exc:
        log.warning("Could not write the cache file %s (%s); going on without it, in memory.", file, exc)
        return _in_memory(shape, dtype, fill)
    finally:
        store.close()
        tmp.unlink(missing_ok=True)
    log.info("Cached %s in %s", name, file)
    return RowFile(file, stop=meta.get("rows")), meta


def _intact(rows, check) -> bool:
    """Whether `rows`' file has the size and sampled rows it was written with."""
    if os.path.getsize(rows.path) != check.get("bytes"):
        return False
    try:
        return rows.check() == check
    except OSError:
        return False


def _in_memory(shape, dtype, fill):
    store = RowArray(shape, dtype)
    meta = dict(fill(store))
    return store.array[:meta.get("rows", shape[0])], meta


def _files_key(paths, stats, image_size, max_pixels) -> str:
    h = hashlib.sha256(json.dumps([_FORMAT, list(image_size), max_pixels]).encode())
    for p, st in zip(paths, stats):
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]


def decode_into(paths, image_size, store, max_pixels=Image.MAX_IMAGE_PIXELS, workers=None, transient=None,
                progress=None) -> dict:
    """Decode file i into row i of `store`, in parallel threads (Pillow decodes without the GIL); returns
    {path: error} for the files that cannot be read. `transient`, a set, receives the paths whose failure
    `is_transient` (not the file's fault); `progress`, a `catdog.utils.progress.Progress`, counts the files.

    `max_pixels` (0 or None: no limit) replaces Pillow's own guard while decoding, which refuses twice
    Pillow's limit before `load_image` could allow more; Pillow's setting is restored afterwards."""

    def one(i):
        try:
            store.write(i, image_files.load_image(paths[i], image_size, max_pixels)[None])
            return None
        except Exception as exc:  # Pillow raises many types for bad files
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the cache's disk, not the file
                raise
            if transient is not None and image_files.is_transient(exc):
                transient.add(paths[i])
            return f"{type(exc).__name__}: {exc}"

    bad = {}
    pillows_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            for start in range(0, len(paths), _CHUNK):
                chunk = range(start, min(start + _CHUNK, len(paths)))
                for i, err in zip(chunk, pool.map(one, chunk)):
                    if err is not None:
                        bad[paths[i]] = err
                    if progress is not None:
                        progress.advance()
    finally:
        Image.MAX_IMAGE_PIXELS = pillows_limit
    return bad


def cached_decode(paths, image_size, max_pixels, cache_dir=None, stats=None):
    """(images, indices of the readable files, {path: error}): every file decoded once, to uint8 rows of
    `image_size`, read from `cache_dir` when this exact file list was decoded before: the same paths, sizes and
    modification times (from `stats`, the files' `os.stat_result`s when the caller has them)."""
    paths = list(paths)

    def fill(store):
        transient = set()
        progress = Progress(f"Decoding to {image_size[0]}x{image_size[1]}", len(paths))
        bad = decode_into(paths, image_size, store, max_pixels, transient=transient, progress=progress)
        progress.close()
        good = [i for i, p in enumerate(paths) if p not in bad]
        meta = {"rows": compact(store, good), "good": good, "bad": bad}
        if transient:
            log.warning("Not caching this decode: %d file(s) failed for a reason of the moment (%s); the next run "
                        "tries them again.", len(transient), ", ".join(printable(p) for p in sorted(transient)[:5]))
            return DoNotCache(meta)
        return meta

    name = f"images-{image_size[0]}x{image_size[1]}"
    key = _files_key(paths, stats or [os.stat(p) for p in paths], image_size, max_pixels) if cache_dir else ""
    images, meta = cached_rows(cache_dir, name, key, (len(paths), *image_size, 3), np.uint8, fill)
    return images, np.asarray(meta["good"], dtype=np.int64), meta["bad"]
