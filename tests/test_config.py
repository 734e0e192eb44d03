import os
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from catdog.utils.config import config_dir

GROUPS = ("dataset", "model", "augment", "trainer", "callbacks", "logger", "backend", "experiment")


def options(group):
    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(compose, group, option):
    overrides = [f"{group}={option}"]
    if group == "dataset":
        overrides.append("dataset.root=/some/dir")
    cfg = compose(overrides)
    assert cfg.trainer.max_epochs == 20 and cfg.model._target_


@pytest.mark.parametrize("experiment,model,augment", [
    ("model1", "cnn_small", "none"), ("model2", "cnn", "flip_rotate_keras"),
    ("model3", "cnn_scaled", "flip_rotate"), ("model4", "mobilenet", "flip_rotate"),
])
def test_experiments_reproduce_the_tutorial(compose, experiment, model, augment):
    cfg = compose([f"experiment={experiment}"])
    assert (cfg.model.name, cfg.augment.name, cfg.trainer.max_epochs) == (model, augment, 20)
    assert (cfg.dataset.batch_size, list(cfg.dataset.image_size)) == (32, [160, 160])
    assert cfg.experiment_name == experiment


@pytest.mark.parametrize("preset,backend", [
    ("experiment=model1", "tensorflow"), ("experiment=model2", "tensorflow"), ("experiment=model3", "tensorflow"),
    ("experiment=model4", "tensorflow"), ("experiment=model4_finetune", "tensorflow"),
    ("hparams_search=mobilenet_optuna", "jax"),
])
def test_presets_choose_the_benchmarks_faster_backend_and_the_command_line_overrides_it(compose, preset, backend):
    assert compose([preset]).backend.name == backend
    other = "jax" if backend == "tensorflow" else "tensorflow"
    cfg = compose([preset, f"backend={other}"])
    assert cfg.backend.name == other and cfg.backend.import_tensorflow == (other == "tensorflow")


def test_backend_defaults_to_tensorflow_without_a_preset(compose):
    assert compose([]).backend.name == "tensorflow"


def test_unknown_key_is_rejected(compose):
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        compose(["trainer.no_such_key=1"])


def test_unknown_model_is_rejected(compose):
    with pytest.raises(ConfigCompositionException, match="resnet9000"):
        compose(["model=resnet9000"])


def test_augmentation_layers_draw_independently_and_reproducibly(compose):
    import keras
    import numpy as np
    from hydra.utils import instantiate

    def draws():
        keras.utils.set_random_seed(0)
        layers = compose(["experiment=model2", "augment=flip_rotate_keras"]).augment.layers
        flip, rotate = (instantiate(c) for c in layers.values())
        images = np.zeros((64, 8, 8, 3), "float32")
        flips = np.ravel(flip.get_random_transformation(images)["flips"])
        angles = np.ravel(rotate.get_random_transformation(images)["angle"])
        return flips, angles

    (flips, angles), again = draws(), draws()
    assert np.array_equal(flips, again[0]) and np.array_equal(angles, again[1])
    assert 0.2 < flips.mean() < 0.8  # both choices occur, and not in step with the angle's sign:
    assert not np.array_equal(flips, angles <= 0)


def test_ckpt_path_names_the_run_directory_a_resume_writes_into(tmp_path):
    from catdog.utils.config import run_dir_of

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.keras").write_bytes(b"")
    assert run_dir_of(None, "new") == "new"
    assert run_dir_of(str(run), "new") == str(run)
    assert run_dir_of(str(run / "checkpoints" / "last.keras"), "new") == str(run)
    assert run_dir_of(str(tmp_path / "elsewhere" / "model.keras"), "new") == str(tmp_path / "elsewhere")


def test_the_parallel_launcher_runs_one_job_per_four_cores():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher.n_jobs == max(1, len(os.sched_getaffinity(0)) // 4)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")


def test_the_finetune_walkthrough_commands_compose_as_written():
    """docs/finetune.md's commands, parsed as a shell would and composed by Hydra as their entry point would."""
    import re
    import shlex

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    text = (Path(__file__).parents[1] / "docs" / "finetune.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [shlex.split(os.path.expandvars(line)) for block in blocks
                for line in block.replace("\\\n", " ").splitlines() if line]
    assert len(commands) == 5
    for command in commands:
        module, args = command[2], command[3:]
        config = {"catdog.tune": "tune", "catdog.train": "train", "catdog.evaluate": "evaluate",
                  "catdog.predict": "predict"}.get(module)
        if config is None:  # catdog.report takes a folder, not overrides
            continue
        overrides = [a for a in args if "=" in a]
        assert len(overrides) == len(args) - (module == "catdog.tune"), command  # tune's subcommand
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            compose(config, overrides=overrides)
    GlobalHydra.instance().clear()


def doc_commands():
    """Every `python -m catdog.<entry>` line in a bash block of the README and docs/: (file, line)."""
    import re

    root = Path(__file__).parents[1]
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if "..." not in line and re.match(r"^([A-Z_]+=\S+ )*python -m catdog\.(train|evaluate|predict|export|explore|tune|bench)\b",
                            line):
                    yield path.name, line


@pytest.mark.parametrize("where,line", list(doc_commands()))
def test_every_doc_command_works_as_written_in_bash_and_zsh(where, line):
    """Quoted where zsh would glob (`[`, `*`, `?`) or a shell redirect, then composed by Hydra as its entry point would."""
    import re
    import shlex

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    bare = [re.sub(r"'[^']*'|\"[^\"]*\"", "", t) for t in shlex.split(line, posix=False)]
    unquoted = [t for t in bare if any(c in t for c in "[*?<>")]
    assert not unquoted, f"{where}: quote {unquoted} (zsh globs them, a shell redirects at < and >): {line}"
    words = [w for w in shlex.split(os.path.expandvars(line)) if not w.startswith("$") and w != "&"]
    words = words[words.index("python"):]  # after the environment's settings; $VARIABLES (a shell's own) left out
    module, args = words[2], [w for w in words[3:] if w not in ("-m", "--multirun")]
    name = module.split(".")[1]
    overrides = [a for a in args if "=" in a]
    if name == "tune":
        args = args[1:]  # its subcommand
    assert len(overrides) == len(args), f"{where}: {line}"
    # a sweep's comma-separated values: compose its first job
    overrides = [o.split("=", 1)[0] + "=" + o.split("=", 1)[1].split(",")[0]
                 if "-m" in words and "[" not in o and "(" not in o else o for o in overrides]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            compose(name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
