"""Any class-folder and file name the filesystem allows goes through train, predict, evaluate and the report:
metrics.json, CSV, JSON, plots and logs name the classes and files exactly. Train runs through its CLI, in this process."""

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.utils.io import TEXT
from catdog.analysis.report import markdown_literal, write_report

from helpers import make_image, run_main

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 name on a UTF-8 system: "caf\udce9"
CLASSES = sorted(["$x_{1}", 'a,b "c"', "ünïcödé 猫", "-dash", NOT_UTF8])
FILE_NAMES = ["new\nline.png", "comma,name.jpg", os.fsdecode(b"\xff\xfe.jpg"), "-lead 'q' $HOME %d #1.JPG"]


def named_folders(root, rng) -> Path:
    """train/ (2 images per class) and validation/ (4: one test batch of 4 is carved from its 20), every
    class's first files given FILE_NAMES; a nested sub-folder, a dangling link and a text file in train/."""
    for split, n in (("train", 2), ("validation", 4)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                make_image(folder / (FILE_NAMES[i] if i < len(FILE_NAMES) else f"{i}.png"), label % 2, rng)
    nested = root / "train" / CLASSES[0] / "sub folder, nested"
    nested.mkdir()
    make_image(nested / "deep.png", 0, rng)
    (root / "train" / CLASSES[1] / "gone\n.jpg").symlink_to(root / "nowhere.jpg")
    (root / "train" / CLASSES[1] / "notes, etc.txt").write_text("not an image")
    return root


def read_csv(path) -> list[dict]:
    with open(path, newline="", **TEXT) as f:
        return list(csv.DictReader(f))


def test_odd_names_survive_train_predict_evaluate_and_report(compose, tmp_path, capfd, caplog):
    data = named_folders(tmp_path / "data", np.random.default_rng(0))
    run = tmp_path / "run"
    result = run_main("catdog.train", "dataset=folder", f"dataset.root={data}", "experiment=model1",
                      "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.fast_dev_run=1",
                      "trainer.verbose=0", "augment=none", f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'c'}")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output and "Logging error" not in output, output[-3000:]

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == CLASSES and list(metrics["label_counts"]) == CLASSES
    assert metrics["label_counts"][CLASSES[0]] == 3  # the nested image is its class folder's
    for split in ("val", "test"):  # per-class figures of a fast_dev_run: a batch of 4 each
        per_class = metrics[f"{split}_per_class"]
        assert list(per_class) == CLASSES and sum(c["support"] for c in per_class.values()) == 4
        assert all(set(c) == {"precision", "recall", "f1", "support"} for c in per_class.values())
    for name in ("confusion.png", "mistakes.png", "accuracy.png"):
        assert Image.open(run / name).size[0] > 100, name
    log_text = "".join(p.read_text(**TEXT) for p in run.glob("*.log"))
    assert "Skipped 2 file(s)" in log_text and "gone\\n.jpg" in log_text and "notes, etc.txt" in log_text

    loose = tmp_path / "loose"  # predict on a folder of odd files: nested, an unreadable one, a dangling link
    (loose / "a, b" / "$c").mkdir(parents=True)
    images = [loose / FILE_NAMES[0], loose / "a, b" / "$c" / FILE_NAMES[2], loose / "a, b" / FILE_NAMES[3]]
    for path in images:
        make_image(path, 0, np.random.default_rng(1))
    broken = loose / os.fsdecode(b"broken \x80.jpg")
    broken.write_bytes(b"not a jpeg")
    (loose / "dangling.png").symlink_to(tmp_path / "nothing")
    ckpt = run / "checkpoints" / "best.keras"
    from catdog.evaluate import evaluate
    from catdog.predict import predict

    caplog.set_level(logging.INFO)
    handler = logging.FileHandler(tmp_path / "job.log")  # as Hydra's job log: the locale's encoding, strict
    logging.getLogger().addHandler(handler)
    try:
        rows = predict(compose([f"ckpt_path={ckpt}", f"images={loose}", f"paths.output_dir={tmp_path / 'p'}"],
                               config_name="predict"))
        report = evaluate(compose([f"ckpt_path={ckpt}", f"data_dir={data / 'validation'}",
                                   f"paths.output_dir={tmp_path / 'e'}"], config_name="evaluate"))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert "Logging error" not in capfd.readouterr().err
    assert "broken \\udc80.jpg" in caplog.text and "dangling.png" in caplog.text and "caf\\udce9" in caplog.text

    expected = sorted(str(p) for p in images)
    assert sorted(r["path"] for r in rows) == expected and all(r["label"] in CLASSES for r in rows)
    table = read_csv(tmp_path / "p" / "predictions.csv")
    assert sorted(r["path"] for r in table) == expected  # a newline and undecodable bytes in a path, round trip
    assert list(table[0]) == ["path", "label", "probability", *(f"p_{c}" for c in CLASSES)]
    written = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert sorted(r["path"] for r in written["predictions"]) == expected and list(written["skipped_images"]) == [
        str(broken)]
    assert Path(written["predictions"][0]["path"]).is_file()
    assert report["images"] == 20 and list(report["per_class"]) == CLASSES
    on_disk = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert list(on_disk["per_class"]) == CLASSES
    assert {"precision", "recall", "f1"} <= set(on_disk["per_class"][NOT_UTF8])

    text = write_report(run, tmp_path / "report").read_text(**TEXT)
    assert all(f"| {markdown_literal(c)} |" in text for c in CLASSES)
    assert read_csv(tmp_path / "report" / "runs.csv")[0]["model"] == "cnn_small"
