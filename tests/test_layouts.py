"""Flat folders, split folders and manifests; the manifest a run writes; overlap refusal; rows on disk."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from catdog.data import ImageFolderDataModule
from catdog.data.store import RowFile
from catdog.errors import CatdogError

from helpers import make_image, make_image_folders

SMALL = ["experiment=model3", "augment=none", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0"]


def flat_folder(root, counts=None, seed=0):
    rng = np.random.default_rng(seed)
    for label, (name, n) in enumerate((counts or {"cats": 20, "dogs": 20, "owls": 10}).items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            make_image(root / name / f"{i}.png", label % 2, rng)
    return root


def module(**kw):
    return ImageFolderDataModule(image_size=(16, 16), batch_size=4, **kw)


def manifest_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_flat_folder_is_split_per_class_and_its_run_writes_a_disjoint_manifest(compose, tmp_path):
    from catdog.train import train

    root = flat_folder(tmp_path / "photos")
    dm = module(root=str(root), val_fraction=0.2, test_fraction=0.5)
    dm.setup()
    assert dm.layout_used == "flat" and dm.class_names == ["cats", "dogs", "owls"]
    counts = {s: np.bincount(f.labels, minlength=3).tolist() for s, f in dm.folders.items()}
    assert counts == {"train": [16, 16, 8], "val": [2, 2, 1], "test": [2, 2, 1]}  # stratified: 20% held out

    cfg = compose([*SMALL, "dataset=folder", f"dataset.root={root}", "trainer.fast_dev_run=1"])
    metrics = train(cfg)
    assert metrics["layout"] == "flat" and metrics["num_images"] == {"train": 40, "val": 8, "test": 2}
    rows = manifest_rows(Path(cfg.paths.output_dir) / "manifest.csv")
    splits = {s: {r["path"] for r in rows if r["split"] == s} for s in ("train", "validation", "test")}
    assert [len(v) for v in splits.values()] == [40, 8, 2]
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    assert {r["label"] for r in rows} == {"cats", "dogs", "owls"}

    from catdog.evaluate import evaluate

    manifest = Path(cfg.paths.output_dir) / "manifest.csv"
    checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "best.keras"
    result = evaluate(compose([f"ckpt_path={checkpoint}", f"manifest={manifest}", "split=test"],
                              config_name="evaluate"))
    assert result["images"] == 2 and set(result["per_class"]) == {"cats", "dogs", "owls"}

    again = module(manifest=str(Path(cfg.paths.output_dir) / "manifest.csv"))
    again.setup()  # the run's manifest gives back exactly its splits, in its order
    dm_default = module(root=str(root))
    dm_default.setup()
    for split in ("train", "val", "test"):
        assert again.folders[split].paths == dm_default.folders[split].paths
        np.testing.assert_array_equal(again.folders[split].labels, dm_default.folders[split].labels)


def test_split_folders_use_a_test_folder_when_there_is_one(tmp_path):
    root = make_image_folders(tmp_path / "data", train=4, val=6)
    shutil.copytree(root / "validation", root / "test")
    for f in (root / "test").rglob("*.jpg"):  # other content, or the overlap check refuses it
        make_image(f, 0, np.random.default_rng(len(str(f))))
    dm = module(root=str(root))
    dm.setup()
    assert dm.layout_used == "split" and (len(dm.folders["val"]), len(dm.folders["test"])) == (12, 12)
    assert all("/test/" in p for p in dm.folders["test"].paths)


def test_a_manifest_with_relative_paths_and_no_test_rows(tmp_path):
    root = make_image_folders(tmp_path / "data", train=4, val=20)
    lines = ["path,label,split"] + [f"{p.relative_to(root)},{p.parent.name},{p.parts[-3]}"
                                    for p in sorted(root.rglob("*.jpg"))]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    dm = module(manifest=str(root / "list.csv"))
    dm.setup()
    assert dm.layout_used == "manifest" and len(dm.folders["train"]) == 8
    assert (len(dm.folders["val"]), len(dm.folders["test"])) == (32, 8)  # 2 of 10 batches: the tutorial's rule
    (root / "bad.csv").write_text("file,class\nx.jpg,cats\n")
    with pytest.raises(CatdogError, match="columns path, label, split"):
        module(manifest=str(root / "bad.csv")).setup()
    (root / "odd.csv").write_text(f"path,label,split\n{lines[1].split(',')[0]},cats,holdout\n")
    with pytest.raises(CatdogError, match="unknown split"):
        module(manifest=str(root / "odd.csv")).setup()


def test_splits_that_share_an_image_are_refused_naming_the_files(tmp_path):
    root = make_image_folders(tmp_path / "data", train=4, val=4)
    shutil.copy(root / "train" / "cats" / "cats.1.jpg", root / "validation" / "cats" / "copy.jpg")
    with pytest.raises(CatdogError, match=r"share 1 image.*cats\.1\.jpg.*copy\.jpg.*same content"):
        module(root=str(root)).setup()
    (root / "validation" / "cats" / "copy.jpg").unlink()
    module(root=str(root)).setup()
    same = root / "train" / "cats" / "cats.0.jpg"
    (tmp_path / "twice.csv").write_text(f"path,label,split\n{same},cats,train\n{same},cats,validation\n"
                                        f"{root / 'train/dogs/dogs.0.jpg'},dogs,train\n")
    with pytest.raises(CatdogError, match=r"cats\.0\.jpg \(in train and validation\)"):
        module(manifest=str(tmp_path / "twice.csv")).setup()


def test_balanced_class_weights_reach_keras_fit(compose, tmp_path, monkeypatch):
    import keras

    from catdog.train import train

    root = flat_folder(tmp_path / "photos", {"common": 30, "rare": 10})
    dm = module(root=str(root), class_weight="balanced")
    assert dm.class_weights() == pytest.approx({0: 32 / (2 * 24), 1: 32 / (2 * 8)})
    assert module(root=str(root), class_weight={"rare": 3}).class_weights() == {0: 1.0, 1: 3.0}
    with pytest.raises(CatdogError, match="not among the classes"):
        module(root=str(root), class_weight={"owls": 3}).class_weights()
    seen = []
    fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: seen.append(k["class_weight"]) or fit(self, *a, **k))
    train(compose([*SMALL, "dataset=folder", f"dataset.root={root}", "trainer.fast_dev_run=1",
                   "class_weight=balanced"]))
    assert seen == [pytest.approx({0: 32 / 48, 1: 32 / 16})]


def test_rows_on_disk_read_as_the_array(tmp_path):
    array = np.random.default_rng(0).integers(0, 255, (7, 3, 2, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    rows = RowFile(tmp_path / "a.npy")
    assert rows.shape == array.shape and len(rows) == 7
    np.testing.assert_array_equal(rows[3], array[3])
    np.testing.assert_array_equal(rows[[6, 0, 2]], array[[6, 0, 2]])
    np.testing.assert_array_equal(rows[2:5][1], array[3])
    np.testing.assert_array_equal(np.asarray(rows[:4]), array[:4])
    np.testing.assert_array_equal(rows[-1], array[-1])
    with pytest.raises(IndexError):
        rows[7]


def test_a_class_without_training_images_is_refused_naming_it_and_where_its_images_are(tmp_path):
    root = make_image_folders(tmp_path / "data", train=3, val=2)
    owl = root / "validation" / "owls"
    owl.mkdir()
    make_image(owl / "owl.jpg", 0, np.random.default_rng(99))
    rows = [["path", "label", "split"]] + [[str(p), p.parent.name, p.parent.parent.name]
                                          for p in sorted(root.rglob("*.jpg"))]
    manifest = tmp_path / "photos.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(CatdogError, match=r"photos.csv: 1 class\(es\) have no training image.*owls \(0 train, 1 "
                                          r"validation, 0 test\)"):
        ImageFolderDataModule(manifest=str(manifest), batch_size=2).setup()


def test_a_class_too_small_for_a_split_is_a_warning_recorded_in_the_metrics(tmp_path, caplog):
    root = make_image_folders(tmp_path / "data", classes=("cats", "dogs", "owls"), train=0, val=5)
    rng = np.random.default_rng(7)
    for extra in range(5, 10):  # cats and dogs: 10 each; owls: 5
        for name in ("cats", "dogs"):
            make_image(root / "validation" / name / f"more{extra}.jpg", 0, rng)
    data = ImageFolderDataModule(root=str(root / "validation"), val_fraction=0.2, test_fraction=0.5, batch_size=2)
    with caplog.at_level("WARNING", "catdog.data.datamodule"):
        data.setup()  # owls: 5 images, 1 held out, which validation gets and test does not
    assert data.classes_missing == {"test": ["owls"]}
    assert "1 class(es) have no test image, so their test figures are not measured: owls" in caplog.text
    assert data.describe()["classes_missing"] == {"test": ["owls"]}


def test_the_test_carved_from_validation_keeps_each_class_share(tmp_path):
    from catdog.data.images import ImageFolder
    from catdog.data.layouts import carve_test

    labels = np.array([0] * 70 + [1] * 25 + [2] * 5)  # 100 validation files, 4 batches of 32
    val = ImageFolder([f"{i}.jpg" for i in range(100)], labels, ["a", "b", "c"])
    parts = carve_test(val, 0.5, 32, seed=0)  # floor(4 * 0.5) = 2 batches: 64 test images
    test_counts = np.bincount(parts["test"].labels, minlength=3).tolist()
    assert test_counts == [45, 16, 3] and len(parts["val"]) == 36  # 44.8, 16.0, 3.2 -> the largest remainder
    assert not set(parts["val"].paths) & set(parts["test"].paths)
    assert parts["test"].paths == sorted(parts["test"].paths, key=lambda p: int(p.split(".")[0]))
    assert carve_test(val, 0.5, 32, seed=1)["test"].paths != parts["test"].paths  # the seed draws which ones
