import collections
import contextlib
import os

import numpy as np
import pytest
from PIL import Image

from catdog.data import ImageFolderDataModule, list_image_folder, load_image
from catdog.data.cache import cached_decode
from catdog.errors import CatdogError

from helpers import make_image_folders


def datamodule(root, **kw):
    return ImageFolderDataModule(root=str(root), image_size=(32, 32), batch_size=4, **kw)


def test_test_split_is_the_tutorials_size_and_disjoint_from_validation(tmp_path):
    root = make_image_folders(tmp_path, train=2, val=500)
    dm = ImageFolderDataModule(root=str(root), image_size=(16, 16), batch_size=32, split_seed=3)
    dm.setup()
    assert (dm.num_images("test"), dm.num_images("val")) == (192, 808)  # 32 batches // 5 = 6 of 32 images
    folder = list_image_folder(root / "validation")
    order = np.random.default_rng(3).permutation(len(folder))
    test, val = set(order[:192]), set(order[192:])
    assert not test & val and len(test | val) == 1000
    other_seed = ImageFolderDataModule(root=str(root), image_size=(16, 16), batch_size=32, split_seed=3, seed=7)
    other_seed.setup()  # the training seed does not move the split
    for split in ("test", "val"):
        np.testing.assert_array_equal(other_seed.arrays[split][0], dm.arrays[split][0])


@pytest.mark.parametrize("loader", ["tf_data", "numpy"])
def test_pipelines_batch_shuffle_and_limit(tiny_data, loader):
    dm = datamodule(tiny_data, loader=loader)
    dm.setup()
    assert dm.class_names == ["cats", "dogs"] and dm.label_counts() == {"cats": 12, "dogs": 12}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 32, 32, 3) and x.dtype.name == "float32"
    assert len(list(dm.train_dataloader(limit_batches=2))) == 2
    first = [np.asarray(y) for _, y in dm.train_dataloader()]
    second = [np.asarray(y) for _, y in dm.train_dataloader()]
    assert sorted(np.concatenate(first)) == sorted(np.concatenate(second))
    assert [len(y) for _, y in dm.val_dataloader()] == [4, 4, 4, 4]  # 20 images, 4 of them test


def test_numpy_batches_are_the_tf_data_batches_and_reshuffle_each_epoch(tiny_data):
    plain = {loader: datamodule(tiny_data, loader=loader) for loader in ("tf_data", "numpy")}
    for dm in plain.values():
        dm.setup()
    expected, got = ([(np.asarray(x), np.asarray(y)) for x, y in plain[k].val_dataloader()] for k in plain)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(expected, got))
    loader = plain["numpy"].train_dataloader()  # on TensorFlow, a generator over NumPy batches
    first, second = (np.concatenate([np.asarray(y) for _, y in loader]) for _ in range(2))
    assert sorted(first) == sorted(second) and len(first) == 24 and not np.array_equal(first, second)


@pytest.mark.parametrize("loader", ["tf_data", "numpy"])
def test_tensorflow_pipelines_run_without_tf_data_autotuning(tiny_data, loader):
    from catdog.data.loaders import ArrayBatches

    dm = datamodule(tiny_data, loader=loader)
    dm.setup()
    for ds in (dm.train_dataloader(), dm.val_dataloader()):
        assert ds.options().autotune.enabled is False  # deleting its iterator could wait 10 s for the tuner
    x, y = dm.arrays["train"]
    assert ArrayBatches(x, y, 4).tf_dataset().cardinality() == 6
    endless = ArrayBatches(x, y, 4, seed=0).tf_dataset(repeat=True)
    labels = np.concatenate([np.asarray(b) for _, b in endless.take(12)])  # two passes of 6 batches
    assert sorted(labels[:24]) == sorted(labels[24:]) and not np.array_equal(labels[:24], labels[24:])


def test_decode_cache_is_reused(tiny_data, tmp_path, monkeypatch):
    dm = datamodule(tiny_data, cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert not (tmp_path / "cache").exists()  # setup lists the files; the first loader decodes them
    dm.arrays
    assert len(list((tmp_path / "cache").glob("images-*.npy"))) == 3
    import catdog.data.cache as cache

    monkeypatch.setattr(cache, "decode_into", lambda *a, **k: pytest.fail("decoded twice"))
    again = datamodule(tiny_data, cache_dir=str(tmp_path / "cache"))
    again.setup()
    np.testing.assert_array_equal(again.arrays["train"][0], dm.arrays["train"][0])


def test_missing_root_and_missing_split_are_clear_errors(tmp_path):
    with pytest.raises(CatdogError, match="dataset.root"):
        datamodule(tmp_path / "absent").setup()
    (tmp_path / "only_train" / "train" / "cats").mkdir(parents=True)
    with pytest.raises(CatdogError, match="validation"):
        datamodule(tmp_path / "only_train").setup()


def test_empty_class_and_single_class_are_clear_errors(tiny_data):
    (tiny_data / "train" / "birds").mkdir()
    with pytest.raises(CatdogError, match="birds.*holds no images"):
        datamodule(tiny_data).setup()
    with pytest.raises(CatdogError, match="at least two"):
        list_image_folder(tiny_data / "train" / "cats")


def test_corrupt_and_non_image_files_are_skipped_or_refused(tiny_data):
    cats = tiny_data / "train" / "cats"
    good = (cats / "cats.0.jpg").read_bytes()
    (cats / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (cats / "notes.txt").write_text("not an image")
    (cats / ".DS_Store").write_bytes(b"\0\0")
    dm = datamodule(tiny_data)
    dm.setup()
    assert dm.label_counts() == {"cats": 12, "dogs": 12}
    assert list(dm.skipped) == [str(cats / "truncated.jpg")]
    with pytest.raises(CatdogError, match="truncated.jpg"):
        datamodule(tiny_data, strict=True).arrays


@pytest.mark.parametrize("mode,ext", [("L", "png"), ("RGBA", "png"), ("CMYK", "jpg"), ("P", "gif"), ("I;16", "png")])
def test_any_image_mode_becomes_rgb(tmp_path, mode, ext):
    path = tmp_path / f"x.{ext}"
    Image.new(mode, (50, 30)).save(path)
    assert load_image(path, (20, 24)).shape == (20, 24, 3)


def test_decompression_bomb_guard(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (3000, 3000)).save(path)
    with pytest.raises(ValueError, match="decompression"):
        load_image(path, (32, 32), max_pixels=1_000_000)


def test_pixel_limit_above_pillows_own_is_honoured(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # Pillow refuses over twice this by itself
    images, good, bad = cached_decode([str(path)], (32, 32), max_pixels=10_000_000)
    assert not bad and images.shape == (1, 32, 32, 3)
    assert Image.MAX_IMAGE_PIXELS == 1_000_000  # Pillow's own setting is left as it was
    assert not cached_decode([str(path)], (32, 32), max_pixels=0)[2]  # 0: no limit
    assert cached_decode([str(path)], (32, 32), max_pixels=1_000_000)[2]


@pytest.mark.backends
def test_augmented_batches_are_reproducible_from_the_seed(tiny_data):
    import keras

    def batches(augment=True):
        keras.utils.set_random_seed(1)
        layers = [keras.layers.RandomFlip(seed=1), keras.layers.RandomRotation(0.2, seed=1)] if augment else None
        dm = datamodule(tiny_data, augment=layers)
        dm.setup()
        return [np.asarray(x) for x, _ in dm.train_dataloader()]

    first, second = batches(), batches()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], batches(augment=False)[0])


def test_the_training_order_is_a_function_of_the_seed_and_the_epoch(tiny_data):
    dm = datamodule(tiny_data)
    dm.setup()
    epochs = dm.train_dataloader()
    straight = []
    for _ in range(3):
        straight.append(np.concatenate([np.asarray(y) for _, y in epochs]))
    resumed = np.concatenate([np.asarray(y) for _, y in dm.train_dataloader(first_epoch=2)])
    np.testing.assert_array_equal(resumed, straight[2])  # what a run resumed at epoch 2 reads
    assert not np.array_equal(straight[0], straight[1])


@pytest.mark.parametrize("damage", ["cut", "changed"])
def test_a_damaged_decode_cache_is_found_and_made_again(tiny_data, tmp_path, caplog, damage):
    def decoded():
        dm = datamodule(tiny_data, cache_dir=str(tmp_path / "cache"))
        dm.setup()
        return np.asarray(dm.arrays["train"][0])

    first = decoded()
    cache = max((tmp_path / "cache").glob("images-*.npy"), key=lambda p: p.stat().st_size)
    data = bytearray(cache.read_bytes())
    if damage == "cut":  # a disk that filled up, a copy cut short
        data = data[:len(data) // 2]
    else:  # the first row's bytes (a sampled row) flipped
        data[-16 * 40:] = bytes(255 - b for b in data[-16 * 40:])
    cache.write_bytes(bytes(data))
    with caplog.at_level("WARNING", "catdog.data.cache"):
        again = decoded()
    assert f"The cache file {cache} is damaged" in caplog.text
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("layout", ["split", "flat", "manifest"])
def test_setup_and_the_decode_cache_key_stat_each_image_once(tmp_path, monkeypatch, layout):
    root = make_image_folders(tmp_path / "data", train=6, val=5)
    kw = {"root": str(root)}
    if layout == "flat":
        kw = {"root": str(root / "train"), "val_fraction": 0.5}
    elif layout == "manifest":
        datamodule(root).write_manifest(tmp_path / "manifest.csv")
        kw = {"manifest": str(tmp_path / "manifest.csv")}
    images = {str(p) for p in (root / "train" if layout == "flat" else root).rglob("*.jpg")}
    calls = collections.Counter()
    real_stat, real_lstat, real_scandir = os.stat, os.lstat, os.scandir

    def counted(real):
        def call(path, *args, **kw):
            calls[str(path)] += 1
            return real(path, *args, **kw)
        return call

    class Entry:  # os.DirEntry, counting its stat() (its file type comes with the listing)
        def __init__(self, entry):
            self._entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self):
            return self._entry.is_dir()

        def is_file(self):
            return self._entry.is_file()

        def stat(self):
            calls[self.path] += 1
            return self._entry.stat()

    @contextlib.contextmanager
    def scandir(path):
        with real_scandir(path) as entries:
            yield (Entry(e) for e in entries)

    monkeypatch.setattr(os, "stat", counted(real_stat))
    monkeypatch.setattr(os, "lstat", counted(real_lstat))
    monkeypatch.setattr(os, "scandir", scandir)
    dm = ImageFolderDataModule(image_size=(16, 16), batch_size=4, cache_dir=str(tmp_path / "cache"), **kw)
    dm.setup()
    dm.arrays  # the decode cache's key
    listed = {p for folder in dm.folders.values() for p in folder.paths}
    assert {os.path.abspath(p) for p in listed} == images
    assert {p: calls[p] for p in listed} == {p: 1 for p in listed}
