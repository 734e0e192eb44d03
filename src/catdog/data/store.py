"""Arrays on disk, read by rows: a decoded data set or its features never has to fit in memory.

The files are plain `.npy` (`numpy.load(path, mmap_mode="r")` reads them too). `RowFile` reads the rows a
batch asks for with `os.preadv`, into memory of its own, and maps nothing: the pages the OS caches stay
the OS's, so a process's memory does not grow with the file (a memory map's pages would count towards
its resident set once touched). `RowWriter` writes rows in place with `os.pwrite`, from many threads.
"""

import hashlib
import os
from pathlib import Path

import numpy as np


def _header(path) -> tuple[tuple, np.dtype, int]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array cannot be read by rows")
        return tuple(shape), np.dtype(dtype), f.tell()


class RowFile:
    """Rows `start:stop` of the array in a `.npy` file; indexing with an int, a slice or an index array reads
    just those rows. A slice with step 1 is another `RowFile`, without reading."""

    def __init__(self, path, start=0, stop=None):
        self.path = str(path)
        shape, self.dtype, self.offset = _header(self.path)
        self.start, self.stop = start, shape[0] if stop is None else min(stop, shape[0])
        self.row_shape = shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = None

    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getstate__(self):  # a worker process opens the file for itself
        return {**self.__dict__, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def fingerprint(self) -> str:
        """Which rows of which file version: a cache key that reads no data."""
        st = os.fstat(self._fd) if self._fd is not None else os.stat(self.path)  # open: maybe unlinked
        return hashlib.sha256(f"{os.path.abspath(self.path)}\0{st.st_size}\0{st.st_mtime_ns}\0{self.start}\0"
                              f"{self.stop}".encode()).hexdigest()[:24]

    def check(self, samples=16) -> dict:
        """What verifies the file cheaply: its size and a digest of `samples` rows spread over it (a cut file
        or changed rows there give other values)."""
        index = np.unique(np.linspace(0, len(self) - 1, min(samples, len(self))).astype(np.int64)) if len(self) else []
        digest = hashlib.sha256(self._read(np.asarray(index, np.int64)).tobytes()).hexdigest()[:24]
        return {"bytes": os.path.getsize(self.path), "dtype": self.dtype.str, "sample": digest}

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return RowFile(self.path, self.start + start, self.start + max(start, stop))
            index = np.arange(start, stop, step)
        if isinstance(index, (int, np.integer)):
            return self._read(np.asarray([index]))[0]
        return self._read(np.asarray(index))

    def __array__(self, dtype=None, copy=None):
        rows = self._read(np.arange(len(self)))
        return rows if dtype is None else rows.astype(dtype)

    def _read(self, index) -> np.ndarray:
        index = np.where(index < 0, index + len(self), index)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(index), *self.row_shape), self.dtype)
        for row, i in zip(out, index):
            view = memoryview(row.reshape(-1).view(np.uint8))
            if os.preadv(self._fd, [view], self.offset + (self.start + int(i)) * self.row_bytes) != self.row_bytes:
                raise OSError(f"{self.path} is shorter than its header says (truncated?)")
        return out


class RowWriter:
    """A `.npy` file of `shape` and `dtype`, made at its full size, written row by row (thread-safe)."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        with open(self.path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                      "fortran_order": False, "shape": self.shape})
            self.offset = f.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDWR)
        os.ftruncate(self._fd, self.offset + self.shape[0] * self.row_bytes)

    def write(self, start: int, rows) -> None:
        data = np.ascontiguousarray(rows, self.dtype)
        view, position = memoryview(data.reshape(-1).view(np.uint8)), self.offset + start * self.row_bytes
        while view:  # pwrite may write less than asked
            written = os.pwrite(self._fd, view, position)
            view, position = view[written:], position + written

    def read(self, start: int, count: int = 1) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), self.dtype)
        os.preadv(self._fd, [memoryview(out.reshape(-1).view(np.uint8))], self.offset + start * self.row_bytes)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


class RowArray:
    """`RowWriter`'s interface over an array in memory (when there is no cache folder to write to)."""

    def __init__(self, shape, dtype):
        self.array = np.empty(shape, dtype)

    def write(self, start: int, rows) -> None:
        self.array[start:start + len(rows)] = rows

    def read(self, start: int, count: int = 1) -> np.ndarray:
        return self.array[start:start + count].copy()

    def close(self) -> None:
        pass


def compact(store, keep) -> int:
    """Move rows `keep` (ascending) to the front of `store`, in place; returns how many rows are kept."""
    for new, old in enumerate(keep):
        if new != old:
            store.write(new, store.read(int(old)))
    return len(keep)
