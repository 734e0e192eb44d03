import csv
import json

import pytest

from PIL import Image

from catdog.analysis.bench import comparison_row, peer_train_images
from catdog.analysis.report import collect_runs, read_run, write_report
from catdog.utils.run_info import cpu_info

from helpers import make_image_folders, run_main


@pytest.mark.slow
def test_sweep_over_backends_runs_each_job_on_its_own_backend(tiny_data, tmp_path):
    sweep, mine = tmp_path / "sweep", tmp_path / "my_conf" / "augment" / "contrast.yaml"
    mine.parent.mkdir(parents=True)  # each job, a process of its own, must find the user's config too
    mine.write_text("name: contrast\nlayers:\n  contrast:\n    _target_: keras.layers.RandomContrast\n"
                    "    factor: 0.5\n")
    result = run_main("catdog.train", "-m", "experiment=model1", "augment=contrast", "backend=jax,tensorflow",
                     "dataset.batch_size=4,0", "trainer.fast_dev_run=1", f"dataset.root={tiny_data}",
                     "dataset.image_size=[32,32]", "trainer.verbose=0", f"paths.cache_dir={tmp_path / 'cache'}",
                     f"hydra.sweep.dir={sweep}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     f"hydra.searchpath=[file://{mine.parent.parent}]")
    assert result.returncode == 1  # two jobs have batch_size=0 ...
    assert "dataset.batch_size=0: must be a positive integer" in (sweep / "1" / "train.log").read_text()
    jobs = [read_run(sweep / n) for n in ("0", "2")]  # backend from provenance.json
    assert [job["backend"] for job in jobs] == ["jax", "tensorflow"]  # ... the other two ran, each on its backend
    assert [job["augment"] for job in jobs] == ["contrast", "contrast"]
    runs, failed = collect_runs(sweep)
    assert len(runs) == 2 and failed == ["1", "3"]
    for job in ("0", "2"):  # its run directory, once (the job's process says it; the sweep's does not repeat it)
        assert (sweep / job / "train.log").read_text().count("Outputs in") == 1


def fake_run(root, name, **metrics):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("{}")
    base = {"experiment": name, "model": "cnn", "augment": "none", "epochs": 2,
            "best_val_accuracy": 0.7, "final_val_accuracy": 0.65, "test_accuracy": 0.6,
            "median_epoch_seconds": 12.5, "train_images_per_second": 160.0, "params_total": 10,
            "params_trainable": 10}
    provenance = {"backend": metrics.pop("backend", "jax"), "peak_rss_mb": 900.0, "run_seconds": 30.0}
    (run / "metrics.json").write_text(json.dumps({**base, **metrics}))
    (run / "provenance.json").write_text(json.dumps(provenance))
    (run / "history.csv").write_text("epoch,accuracy,val_accuracy\n0,0.5,0.6\n1,0.7,0.7\n")


def test_report_tables_and_plots_from_run_directories(tmp_path):
    fake_run(tmp_path, "0", model="cnn_small", backend="tensorflow", best_val_accuracy=0.625)
    fake_run(tmp_path, "1", model="mobilenet", backend="jax", test_accuracy=0.97, median_epoch_seconds=40.0)
    (tmp_path / "1" / "history.csv").write_text(  # resumed after epoch 1 (repeated), its last row cut by a kill
        "epoch,accuracy,val_accuracy\n0,0.5,0.6\n1,0.7,0.7\n1,0.7,0.72\n2,0.8,0.8\n3,0.9,\n")
    (tmp_path / "2" / ".hydra").mkdir(parents=True)  # a job that died before writing metrics
    (tmp_path / "2" / ".hydra" / "config.yaml").write_text("{}")
    assert {r["run"]: r["val_curve"] for r in collect_runs(tmp_path)[0]}["1"] == [0.6, 0.72, 0.8]
    report = write_report(tmp_path, tmp_path / "report")
    with open(tmp_path / "report" / "runs.csv", newline="") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert rows["0"]["best_val_accuracy"] == "0.625" and rows["0"]["backend"] == "tensorflow"  # provenance.json's
    assert rows["1"]["peak_rss_mb"] == "900.0" and rows["1"]["run_seconds"] == "30.0"
    assert rows["1"]["test_accuracy"] == "0.97" and rows["1"]["median_epoch_seconds"] == "40.0"
    text = report.read_text()
    assert "| 0.6250 |" in text and "| 40.0 |" in text and "Failed (no metrics.json): 2" in text
    (tmp_path / "1" / "confusion.png").write_bytes(b"png")
    assert "![confusion](../1/confusion.png)" in write_report(tmp_path, tmp_path / "report").read_text()
    for png in ("val_curves.png", "backends.png"):
        assert Image.open(tmp_path / "report" / png).size[0] > 300
    (tmp_path / "1" / "provenance.json").write_text(json.dumps({"backend": "tensorflow"}))  # one backend: no bars
    assert "backends.png" not in write_report(tmp_path, tmp_path / "report").read_text()
    assert not (tmp_path / "report" / "backends.png").exists()


def test_the_report_has_a_column_for_each_key_its_jobs_vary(tmp_path):
    for job, (size, seed) in enumerate([(96, 0), (160, 0), (96, 1)]):
        fake_run(tmp_path, str(job), model="mobilenet", backend="tensorflow", experiment="model4", seed=seed)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(
            f"- dataset.image_size=[{size},{size}]\n- seed={seed}\n- trainer.max_epochs=3\n")
    write_report(tmp_path, tmp_path / "report")
    with open(tmp_path / "report" / "runs.csv", newline="") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert (rows["1"]["dataset.image_size"], rows["2"]["seed"]) == ("[160,160]", "1")
    assert "trainer.max_epochs" not in rows["0"]  # the same in every job: not an axis
    assert "| dataset.image_size | experiment |" in (tmp_path / "report" / "report.md").read_text()  # seed: a column


def test_the_report_names_its_machine_and_sums_up_runs_that_differ_by_seed(tmp_path):
    cpu = {"model": "AMD EPYC", "cores": 2, "flags": ["avx2", "avx512_bf16"]}
    for job, (precision, seed, best) in enumerate([("float32", 0, 0.6), ("float32", 1, 0.7), ("mixed_bfloat16", 0, 0.65),
                                                  ("mixed_bfloat16", 1, 0.55)]):
        fake_run(tmp_path, str(job), experiment="model1", seed=seed, best_val_accuracy=best)
        provenance = tmp_path / str(job) / "provenance.json"
        provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "cpu": cpu, "precision": precision}))
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(
            f"- trainer.precision={precision}\n- seed={seed}\n- paths.cache_dir=cache-{job}\n")
    text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "Machine: AMD EPYC, 2 cores (avx2, avx512_bf16)" in text and str(tmp_path) not in text
    summary = text[text.index("## Over seeds"):]
    assert "paths.cache_dir" not in text  # where a run writes is no axis
    assert "| float32 | 2 | 0 1 | 0.6500 | 0.6000 | 0.7000 |" in summary
    assert "| mixed_bfloat16 | 2 | 0 1 | 0.6000 | 0.5500 | 0.6500 |" in summary


def test_explore_writes_samples_counts_and_augmentation_previews(tiny_data, tmp_path):
    out, mine = tmp_path / "explore", tmp_path / "my_conf" / "augment" / "contrast.yaml"
    mine.parent.mkdir(parents=True)  # an augment option of the user's own, on Hydra's search path
    mine.write_text("name: contrast\nlayers:\n  contrast:\n    _target_: keras.layers.RandomContrast\n"
                    "    factor: 0.5\n")
    result = run_main("catdog.explore", f"dataset.root={tiny_data}", f"hydra.run.dir={out}",
                     f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.searchpath=[file://{mine.parent.parent}]")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads((out / "label_counts.json").read_text())
    assert counts["label_counts"] == {"cats": 12, "dogs": 12} and counts["baseline_accuracy"] == 0.5
    assert Image.open(out / "samples.png").size == (720, 480)  # 3 columns x 2 classes at 240 px
    flip_rotate = Image.open(out / "augment_flip_rotate_keras.png")
    assert flip_rotate.size[1] > Image.open(out / "augment_flip.png").size[1]  # two rows vs one
    assert not (out / "augment_none.png").exists() and (out / "augment_contrast.png").is_file()


@pytest.mark.slow
def test_optuna_preset_runs_trials_and_report_shows_the_best(tiny_data, tmp_path):
    sweep = tmp_path / "optuna"
    result = run_main("catdog.train", "hparams_search=mobilenet_optuna", "hydra.sweeper.n_trials=2",
                     "trainer.fast_dev_run=1", "model.backbone.weights=null", f"dataset.root={tiny_data}",
                     "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
                     f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-2000:]
    runs, failed = collect_runs(sweep)
    assert len(runs) == 2 and not failed
    best = max(r["best_val_accuracy"] for r in runs)
    text = write_report(sweep).read_text()
    assert f"best value: {best}" in text and "model.optimizer.learning_rate" in text


@pytest.mark.slow
def test_bench_runs_the_tutorials_code_then_catdog_on_each_backend(tmp_path):
    data = make_image_folders(tmp_path / "data", train=16, val=80)  # the tutorial's test split needs 5 batches
    out = tmp_path / "bench"
    result = run_main("catdog.bench", "models=[]", "peer.experiments=[model1]", "peer.epochs=1",
                      f"peer.data_root={data}", "peer.weights=unused.weights.h5", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "bench.json").read_text())["peer"]
    assert [(r["experiment"], r["catdog_backend"]) for r in rows] == [("model1", "tensorflow"), ("model1", "jax")]
    assert rows[0]["peer_wall_seconds"] == rows[1]["peer_wall_seconds"] > 0
    assert all(r["catdog_wall_seconds"] > 0 for r in rows)
    for row in rows:  # each row's figures are its own runs': catdog's run directory, the peer's results.jsonl
        run = json.loads((out / "catdog" / row["catdog_backend"] / "model1" / "metrics.json").read_text())
        assert row["catdog_best_val_accuracy"] == run["best_val_accuracy"]
    peer = json.loads((out / "peer" / "model1" / "results.jsonl").read_text().splitlines()[-1])
    assert rows[0]["peer_best_val_accuracy"] == peer["best_val_accuracy"]
    assert all(r["target_val_accuracy"] == 0.6 and r["peer_train_images_per_second"] > 0 for r in rows)
    assert "| peer_seconds_to_target | catdog_seconds_to_target |" in (out / "bench.md").read_text()
    assert "Step times" not in (out / "bench.md").read_text()  # models=[]: no empty table
    output = result.stdout + result.stderr  # a line as each run ends, with what is left
    assert "[1/3] the tutorial's code, model1" in output and "; 2 to go" in output
    assert "[3/3] catdog, model1 on jax" in output
    assert peer_train_images(data / "train") == 32  # 16 per class


@pytest.mark.slow
def test_the_quick_bench_runs_both_sides_and_names_the_machine_and_versions(tmp_path):
    data = make_image_folders(tmp_path / "data", train=16, val=80)
    out = tmp_path / "bench"
    result = run_main("catdog.bench", "bench_preset=quick", "models=[cnn_small]", "image_size=32", "steps=2",
                      "peer.experiments=[model1]", f"peer.data_root={data}", "peer.weights=unused.weights.h5",
                      f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads((out / "bench.json").read_text())
    assert [(r["model"], r["backend"]) for r in bench["steps"]] == [("cnn_small", "tensorflow"), ("cnn_small", "jax")]
    assert [(r["experiment"], r["catdog_backend"], r["epochs"]) for r in bench["peer"]] == [("model1", "tensorflow", 1)]
    text = (out / "bench.md").read_text()
    assert f"On {bench['cpu']['model']}" in text and f"keras {bench['versions']['keras']}" in text


def test_bench_reads_the_tutorials_count_of_training_images(tmp_path):
    data = make_image_folders(tmp_path / "data", train=6, val=2)
    (data / "train" / "cats" / "notes.txt").write_text("not an image")
    (data / "train" / "readme.jpg").write_bytes(b"")  # outside the class folders
    (data / "train" / "dogs" / "more").mkdir()
    (data / "train" / "dogs" / "more" / "dog.png").write_bytes(b"")  # image_dataset_from_directory walks down
    assert peer_train_images(data / "train") == 13  # 6 per class, and the one further down


def test_bench_row_times_each_side_to_the_target_accuracy():
    peer = {"wall_seconds": 100.0, "train_images": 2000, "epoch_s": [30.0, 20.0, 22.0], "val_s": [5.0, 4.0, 2.0],
            "epoch_s_median": 22.0,
            "history": {"val_accuracy": [0.5, 0.61, 0.7]}, "best_val_accuracy": 0.7, "peak_rss_mb": 1100.0}
    ours = {"wall_seconds": 40.0, "backend": "jax", "epoch_seconds": [12.0, 10.0, 11.0], "setup_seconds": 6.0,
            "num_images": {"train": 640}, "train_images_per_second": 200.0, "best_val_accuracy": 0.62,
            "peak_rss_mb": 1300.0, "history": {"val_accuracy": [0.55, 0.58, 0.62]}}
    row = comparison_row("model1", 0.6, peer, ours)
    assert row["peer_seconds_to_target"] == 50.0  # its fit's first two epochs
    assert row["catdog_seconds_to_target"] == 39.0  # setup and all three epochs
    assert row["peer_train_images_per_second"] == 2000 / 18.0  # its own images over the median of 16 and 20 s
    assert row["wall_speedup"] == 2.5 and row["epoch_speedup"] == 2.0 and row["epochs"] == 3
    assert comparison_row("model1", 0.9, peer, ours)["catdog_seconds_to_target"] is None


@pytest.mark.slow
def test_bench_measures_each_model_and_backend_in_its_own_process(tmp_path):
    out = tmp_path / "bench"
    result = run_main("catdog.bench", "models=[cnn_small]", "backends=[tensorflow,jax]", "steps=2", "warmup=1",
                     "image_size=32", "peer.enabled=false", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads((out / "bench.json").read_text())
    steps = bench["steps"]
    assert [(r["model"], r["backend"]) for r in steps] == [("cnn_small", "tensorflow"), ("cnn_small", "jax")]
    assert all(r["median_step_seconds"] > 0 and r["train_images_per_second"] > 0 for r in steps)
    assert [r["tensorflow_imported"] for r in steps] == [True, False]
    assert "[1/2] step time, cnn_small on tensorflow" in result.stdout + result.stderr
    assert "| cnn_small | jax |" in (out / "bench.md").read_text()
    assert f"On {bench['cpu']['model']}, {bench['cpu']['cores']} cores" in (out / "bench.md").read_text()
    assert all(r["cpu"] == bench["cpu"] for r in steps)
    assert Image.open(out / "bench.png").size[0] > 300


def test_cpu_info_names_the_processor_and_the_flags_behind_the_speed_figures(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    core = "processor\t: {}\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f amx_tile sse\n"
    cpuinfo.write_text(core.format(0) + "\n" + core.format(1))
    info = cpu_info(cpuinfo)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8481C" and info["flags"] == ["avx2", "avx512f", "amx_tile"]
    assert info["cores"] >= 1
    assert cpu_info(tmp_path / "absent")["flags"] == []
