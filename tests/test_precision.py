"""trainer.precision=auto: the choice by hardware (forced here, whatever this machine has), fitted to the task,
recorded in the run."""

import json

import keras
import pytest

from catdog.errors import CatdogError
from catdog.training import precision
from catdog.training.precision import Hardware, choose, fit_to_task, set_precision

from helpers import run_main


def small_run(data, *extra):
    return [f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0", *extra]

AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx2"})


@pytest.mark.parametrize("hardware,policy", [
    (Hardware("cpu", "tensorflow", AMX), "mixed_bfloat16"),
    (Hardware("cpu", "tensorflow", AVX512_BF16), "mixed_bfloat16"),
    (Hardware("cpu", "tensorflow", AVX2), "float32"),
    (Hardware("cpu", "jax", AMX), "float32"),
    (Hardware("gpu", "jax", AVX2, 9.0), "mixed_bfloat16"),
    (Hardware("gpu", "tensorflow", AVX2, 8.6), "mixed_bfloat16"),
    (Hardware("gpu", "tensorflow", AVX2, 7.5), "mixed_float16"),
    (Hardware("gpu", "jax", AVX2, 6.1), "float32"),
    (Hardware("tpu", "jax"), "mixed_bfloat16"),
])
def test_auto_chooses_by_the_hardware_and_says_why(hardware, policy):
    choice = choose(hardware)
    assert choice.policy == policy and choice.auto and choice.reason
    set_precision("auto", hardware)
    assert keras.config.dtype_policy().name == policy


def test_a_given_precision_is_taken_and_a_wrong_one_refused():
    assert set_precision("float32", Hardware("cpu", "tensorflow", AMX)).policy == "float32"
    with pytest.raises(CatdogError, match="must be auto or one of"):
        set_precision("bf16")


def depthwise_backbone(input_shape, name="depthwise"):
    return keras.Sequential([keras.Input(tuple(input_shape)), keras.layers.Conv2D(8, 3),
                             keras.layers.DepthwiseConv2D(3), keras.layers.MaxPooling2D()], name=name)


def task(backbone):
    from catdog import ImageClassifier
    from catdog.models.cnn import conv_blocks

    return ImageClassifier(backbone or conv_blocks, ["a", "b"], image_size=(32, 32), pooling="flatten")


@pytest.mark.parametrize("backbone,policy", [(None, "mixed_bfloat16"), (depthwise_backbone, "float32")])
def test_auto_on_a_fast_bfloat16_cpu_keeps_depthwise_tasks_in_float32(backbone, policy):
    choice = set_precision("auto", Hardware("cpu", "tensorflow", AVX512_BF16))
    built = task(backbone)
    fitted = fit_to_task(built, choice, "cpu")
    assert fitted.policy == policy and built.dtype_policy.name == policy
    assert keras.config.dtype_policy().name == policy  # a head built next follows
    if policy == "float32":
        assert "depthwise" in fitted.reason
        assert {layer.dtype_policy.name for layer in precision._layers(built)} == {"float32"}
        assert built(keras.ops.zeros((1, 32, 32, 3))).dtype == "float32"


def test_auto_takes_a_task_built_before_the_trainer_and_a_given_precision_refuses_it():
    built = task(None)  # float32, the default policy
    assert fit_to_task(built, choose(Hardware("cpu", "tensorflow", AMX)), "cpu").policy == "float32"
    with pytest.raises(CatdogError, match="build the Trainer before the task"):
        fit_to_task(built, set_precision("mixed_bfloat16"), "cpu")


@pytest.mark.parametrize("flags,policy", [(AVX512_BF16, "mixed_bfloat16"), (AVX2, "float32")])
def test_a_run_at_auto_records_its_choice_and_reason(tiny_data, tmp_path, monkeypatch, flags, policy):
    from catdog.utils import run_info

    monkeypatch.setattr(run_info, "cpu_flags", lambda cpuinfo=None: set(flags))  # this CPU, whatever it is
    run = tmp_path / "run"
    result = run_main("catdog.train", *small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1",
                                                 f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"))
    assert result.returncode == 0, result.stdout[-2000:]
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["precision"] == policy and provenance["precision_reason"]
    assert f"precision {policy} (auto: " in (run / "train.log").read_text()


def test_evaluate_names_the_checkpoints_own_precision(tiny_data, tmp_path, monkeypatch):
    from catdog.utils import run_info

    monkeypatch.setattr(run_info, "cpu_flags", lambda cpuinfo=None: set(AVX2))
    run = tmp_path / "run"
    trained = run_main("catdog.train", *small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1",
                                                  f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"))
    assert trained.returncode == 0, trained.stdout[-2000:]
    monkeypatch.setattr(run_info, "cpu_flags", lambda cpuinfo=None: set(AVX512_BF16))  # auto would pick bf16
    out = tmp_path / "evaluated"
    result = run_main("catdog.evaluate", f"ckpt_path={run / 'checkpoints/last.keras'}",
                      f"manifest={run / 'manifest.csv'}", "split=validation", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stdout[-2000:]
    runs = [line for line in (out / "evaluate.log").read_text().splitlines() if "Run:" in line]
    assert runs and all("precision float32 (auto: the task's own" in line for line in runs), runs
