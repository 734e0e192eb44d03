"""Fetch and unpack a dataset archive with Keras' own downloader (cached, unsafe paths filtered)."""

from pathlib import Path
from urllib.parse import urlsplit

from catdog.errors import CatdogError


def download_dataset(url: str, splits, cache_dir=None) -> Path:
    """Download `url` once into the Keras cache; return the extracted folder that holds `splits`."""
    import keras

    fname = Path(urlsplit(url).path).name or "dataset.zip"
    if cache_dir:  # Keras falls back to /tmp/.keras for a folder that does not exist yet
        Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)
    try:
        extracted = Path(keras.utils.get_file(fname, origin=url, extract=True, cache_dir=cache_dir))
    except Exception as exc:
        raise CatdogError(
            f"Could not download the dataset from {url} ({exc}). If this machine is offline, unpack {fname} "
            f"somewhere and point dataset.root (or CATDOG_DATA) at the folder that holds "
            f"{' and '.join(s + '/' for s in splits)} class folders, e.g. dataset.root=~/data/cats_and_dogs_filtered. "
            "The default model also needs the MobileNetV2 ImageNet weights: set model.backbone.weights (or "
            "CATDOG_WEIGHTS) to a local copy of mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5."
        ) from exc
    for candidate in (extracted, *sorted(p for p in extracted.iterdir() if p.is_dir())):
        if all((candidate / s).is_dir() for s in splits):
            return candidate
    raise CatdogError(f"The archive from {url} unpacked to {extracted} but holds no {'/, '.join(splits)}/ folders.")
