"""Per-class precision, recall and F1: the metric, the ErrorAnalysis keys, and the report's table."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from catdog.analysis.metrics import per_class_metrics
from catdog.callbacks import ErrorAnalysis
from catdog.analysis.report import markdown_literal, write_report

CLASSES = ["cat", "dog", "$x_{1}", "never"]


def test_per_class_metrics_of_known_predictions():
    labels = [0, 0, 0, 0, 1, 1, 2, 2]
    predicted = [0, 0, 1, 2, 1, 1, 1, 2]
    scores = per_class_metrics(labels, predicted, CLASSES)
    assert list(scores) == CLASSES
    expected = {"cat": (1.0, 0.5, 2 / 3, 4), "dog": (0.5, 1.0, 2 / 3, 2), "$x_{1}": (0.5, 0.5, 0.5, 2),
                "never": (0.0, 0.0, 0.0, 0)}  # never true, never predicted: 0.0, not a division by zero
    for name, (precision, recall, f1, support) in expected.items():
        assert scores[name] == {"precision": pytest.approx(precision), "recall": pytest.approx(recall),
                                "f1": pytest.approx(f1), "support": support}
    assert per_class_metrics([], [], ["a", "b"]) == {n: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
                                                     for n in ("a", "b")}


def fake_run(num_test):
    """A trainer and task as ErrorAnalysis sees them: validation labels 0,1,1,0; test `num_test` labels."""
    labels = {"val": np.array([0, 1, 1, 0]), "test": np.array([1, 1, 0][:num_test])}
    probabilities = {"val": np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]]),
                     "test": np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]][:num_test])}
    datamodule = SimpleNamespace(arrays={s: (np.zeros((len(v), 8, 8, 3), np.uint8), v) for s, v in labels.items()},
                                 num_images=lambda split: len(labels[split]))
    trainer = SimpleNamespace(datamodule=datamodule, predict=lambda task, dm, split: probabilities[split])
    return trainer, SimpleNamespace(class_names=["a,b \"c\"", "猫"])


@pytest.mark.parametrize("num_test", [3, 0])
def test_error_analysis_adds_per_class_metrics_for_validation_and_test(tmp_path, num_test, caplog, recwarn):
    trainer, task = fake_run(num_test)
    metrics = ErrorAnalysis(tmp_path).on_tested(trainer, task)
    assert metrics["val_per_class"]["猫"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                              "support": 2}
    if num_test:
        assert metrics["test_per_class"]["a,b \"c\""] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
        assert metrics["test_per_class"]["猫"]["recall"] == 0.5
    else:
        assert "test_per_class" not in metrics  # no test images: no test figures
    assert (tmp_path / "confusion.png").is_file() and (tmp_path / "mistakes.png").is_file()
    assert not [w for w in recwarn if "missing from font" in str(w.message)]  # one line per plot says it instead
    assert caplog.text.count("show as boxes") == 2


def test_report_has_a_per_class_table_with_literal_names(tmp_path):
    run = tmp_path / "0"
    run.mkdir()
    scores = {"precision": 0.75, "recall": 0.5, "f1": 0.6, "support": 4}
    names = ["$x_{1}", "a|b *c*", "bad\udcffbyte\nline"]
    metrics = {"experiment": "e", "model": "m", "augment": "none", "backend": "jax", "median_epoch_seconds": 1.0,
               "val_per_class": {n: scores for n in names}, "test_per_class": {names[0]: scores}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    text = write_report(tmp_path).read_text(encoding="utf-8", errors="surrogateescape")
    assert "## Per-class precision, recall and F1" in text
    assert ("| class | val precision | val recall | val f1 | val support | test precision | test recall | test f1 "
            "| test support |") in text
    assert r"| \$x\_\{1\} | 0.7500 | 0.5000 | 0.6000 | 4 | 0.7500 | 0.5000 | 0.6000 | 4 |" in text
    assert r"| a\|b \*c\* | 0.7500 | 0.5000 | 0.6000 | 4 |  |  |  |  |" in text
    assert markdown_literal(names[2]) in text and "\n" not in markdown_literal(names[2])
    assert "| 0 |" in text  # the runs table is unchanged


def test_the_report_lists_the_most_confused_class_pairs(tmp_path):
    import json

    from catdog.analysis.metrics import most_confused

    matrix = [[5, 3, 0], [1, 7, 0], [4, 0, 2]]  # 3 cats as dogs, 4 owls as cats, 1 dog as a cat
    assert [(p["true"], p["predicted"], p["images"]) for p in most_confused(matrix, ["cats", "dogs", "owls"])] == [
        ("owls", "cats", 4), ("cats", "dogs", 3), ("dogs", "cats", 1)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "experiment": "e", "model": "m", "augment": "a", "backend": "tensorflow", "median_epoch_seconds": 1.0,
        "class_names": ["cats", "dogs", "owls"],
        "val_confusion_matrix": matrix}))
    (run / "confusion.png").write_bytes(b"png")
    text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "| owls | cats | 4 |\n| cats | dogs | 3 |\n| dogs | cats | 1 |" in text
