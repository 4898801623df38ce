"""The cpu profile generates its stage configs at run time, under the runs directory: complete, valid configs whose
values follow the profile and the hyper-parameters the dev sweep chose.

The chosen hyper-parameters are given here as recorded in docs/benchmarks.md ("Hyper-parameters chosen on dev"),
so the test needs no runs.
"""
import copy
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from benchmarks import deploy, jobs, profile
from ernie_tiny_distill.config import STAGES, load_config
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CHOSEN = {"conll": {"temperature": 4.0, "ce_weight": 0.5, "learning_rate": 0.002, "nokd_learning_rate": 0.002},
          "imdb": {"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 0.001, "nokd_learning_rate": 0.0005}}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """(matrix, {job name: its stages}) of the cpu profile, generated in a scratch directory."""
    root = tmp_path_factory.mktemp("bench")
    (root / "configs").mkdir()
    for name in ("conll_teacher.yaml", "imdb_teacher.yaml"):
        shutil.copy(ROOT / "configs" / name, root / "configs" / name)
    for task, chosen in CHOSEN.items():
        select = root / "runs" / "bench" / "results" / task / "B" / "sweep" / "select.json"
        select.parent.mkdir(parents=True)
        select.write_text(json.dumps({"status": "done", "chosen": chosen}))
    (root / "runs" / "bench" / "conll").mkdir()
    (root / "runs" / "bench" / "conll" / "unlabeled.txt").write_text("")   # written from CoNLL otherwise
    cwd = os.getcwd()
    os.chdir(root)
    try:
        m = jobs.Matrix(profile.load_profile("cpu"), ["conll", "imdb"])
        stages = {job.name: m.stages(job) for job in m.jobs() if job.kind == "train"}
        yield root, m, stages
    finally:
        os.chdir(cwd)


def test_configs_are_written_under_the_runs_directory_not_the_repository(generated):
    root, m, stages = generated
    assert m.p.runs_dir == "runs/bench" and m.p.configs_dir() == os.path.join("runs/bench", "configs")
    paths = {s.yaml_path for job in stages.values() for s in job}
    assert paths and all(p.startswith("runs/bench/configs/") and p.endswith(".yaml") for p in paths)
    assert sorted(os.listdir(root / "runs" / "bench" / "configs")) == sorted(os.path.basename(p) for p in paths)
    assert not (root / "configs" / "bench").exists() and not (ROOT / "configs" / "bench").exists()


def test_every_generated_config_is_complete_valid_and_runs_with_its_header_command(generated):
    root, m, stages = generated
    for name, job_stages in stages.items():
        for stage in job_stages:
            text = (root / stage.yaml_path).read_text(encoding="utf-8")
            header = [line for line in text.splitlines() if line.startswith("#")]
            assert header[0].startswith(f"# Benchmark (profile cpu), {stage.name}: ")
            assert header[-1] == f"# Run: python tools/train.py --config {stage.yaml_path}"
            assert stage.command == f"python tools/train.py --config {stage.yaml_path}"
            written = yaml.safe_load(text)
            assert written == stage.cfg and set(written) == {"task", "stage", "output_dir", "data", "model",
                                                             "train", "distill"}
            cfg = load_config(str(root / stage.yaml_path))  # every key written out, and valid
            assert cfg.to_dict() == written and cfg.stage in STAGES
            assert cfg.output_dir.startswith("runs/bench/") and cfg.task == m.teacher_cfg(name.split("/")[0]).task


def test_rows_follow_the_profile_and_the_sweeps_choice(generated):
    _, m, stages = generated
    by_variant = {}
    for name, job_stages in stages.items():
        by_variant.setdefault(tuple(name.split("/")[1:3]), []).append((name, job_stages))
    for task, chosen in CHOSEN.items():
        kd = stages[f"{task}/B/task_kd/seed1"][-1].cfg
        assert (kd["stage"], kd["distill"]["kd_weight"], kd["distill"]["temperature"], kd["distill"]["ce_weight"],
                kd["train"]["learning_rate"]) == ("task", 1.0, chosen["temperature"], chosen["ce_weight"],
                                                  chosen["learning_rate"] * m.p.lr_factor["B"])
        no_kd = stages[f"{task}/B/no_kd/seed1"][-1].cfg
        assert (no_kd["distill"]["kd_weight"], no_kd["distill"]["ce_weight"], no_kd["train"]["learning_rate"]) == (
            0.0, 1.0, chosen["nokd_learning_rate"] * m.p.lr_factor["B"])
        assert kd["model"]["teacher"] == no_kd["model"]["teacher"] == m.teacher_cfg(task).output_dir
        # two-stage KD: stage 1 from the pretrained teacher on unlabeled text, stage 2 starts from its best/
        general, second = stages[f"{task}/B/two_stage_kd/seed1"]
        assert general.cfg["stage"] == "general" and general.cfg["data"]["unlabeled"]
        assert general.cfg["model"]["teacher"] == m.teacher_cfg(task).model.teacher
        expected = dict(m.student_block("B"), init="pretrained", path=os.path.join(general.cfg["output_dir"], "best"))
        assert {k: second.cfg["model"]["student"][k] for k in expected} == expected
    # seeds: one row per seed of the profile, each with its own train.seed and output_dir
    seeds = [stages[f"conll/B/task_kd/seed{s}"][-1].cfg for s in m.p.seeds["B"]]
    assert [c["train"]["seed"] for c in seeds] == m.p.seeds["B"]
    assert len({c["output_dir"] for c in seeds}) == len(seeds)
    # dev sweep points never read the test split
    sweeps = [s.cfg for name, job in stages.items() if "/sweep/" in name for s in job]
    assert sweeps and all(c["data"]["max_test_examples"] == 0 for c in sweeps)


def test_whole_document_students_and_their_teachers(generated):
    _, m, stages = generated
    by_name = {j.name: j for j in m.jobs()}
    # the teacher over windows and the ensemble are scored from the whole-document student's config
    assert by_name["imdb/W/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble",
                                                        "imdb/Bp/task_kd_transfer50k/seed1"]
    assert deploy.teachers_command(m, by_name["imdb/teacher/windows"]) == (
        "python -m ernie_tiny_distill.distill.ensemble --config runs/bench/configs/imdb_W_ensemble_kd_seed1.yaml "
        "--member 0 --out runs/bench/imdb/teachers/windows.json")
    assert {"imdb/export/W", "imdb/int8/W"} <= set(by_name["imdb/latency"].deps)
    assert by_name["imdb/W3/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble",
                                                         "imdb/Ap3/task_kd_transfer50k_2ep/seed1"]
    assert {"imdb/export/W3", "imdb/int8/W3", "imdb/export/W3lr", "imdb/int8/W3lr"} <= set(by_name["imdb/latency"].deps)
    assert not any(name.startswith("conll/") and "W" in name.split("/") for name in by_name)
    # the wide-and-deep student waits for its transformer's row and export, and fits stage 'wide' on all reviews
    assert by_name["imdb/W3w/wide_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble", "imdb/W3/ensemble_kd/seed1",
                                                      "imdb/export/W3"]
    wide = stages["imdb/W3w/wide_kd/seed1"][0].cfg
    assert (wide["stage"], wide["model"]["student"]["path"], wide["model"]["wide"]["deep_export"],
            wide["data"]["max_train_examples"]) == ("wide", "runs/bench/imdb/W3/ensemble_kd/seed1/best",
                                                    "runs/bench/imdb/export/W3", None)
    # a student that continues an earlier one waits for that row and starts from its best/ checkpoint
    assert by_name["imdb/W4/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble", "imdb/W3/ensemble_kd/seed1"]
    w4 = stages["imdb/W4/ensemble_kd/seed1"][0].cfg
    assert (w4["stage"], w4["model"]["student"]["init"], w4["model"]["student"]["path"],
            [t["tfidf"] for t in w4["distill"]["teachers"]]) == (
        "task", "pretrained", "runs/bench/imdb/W3/ensemble_kd/seed1/best", [True])


def test_an_explicit_config_dir_still_wins(tmp_path):
    raw = yaml.safe_load((ROOT / "benchmarks" / "profiles" / "cpu.yaml").read_text(encoding="utf-8"))
    assert "config_dir" not in raw
    assert profile.profile_from_dict(dict(raw, config_dir=str(tmp_path))).configs_dir() == str(tmp_path)


def test_full_profile_loads_and_students_pass_through_untouched():
    full = profile.load_profile("full")
    assert full.students["A"].seeds == [1, 2, 3] and full.tasks["imdb"].no_kd_epochs == 6.167
    raw = {"name": "x", "runs_dir": "r", "config_dir": "c", "tasks": {},
           "students": {"P": {"model": {"init": "teacher_pruned", "layers": [1, 4], "num_heads": 6,
                                        "intermediate_size": 512, "hidden_size": 256}, "seeds": [1, 2, 3]}},
           "variants": {"no_kd": {"kd": False}, "kd_recipe": {"distill": {"hidden_weight": 1.0,
                                                                          "attention_weight": 1.0}}},
           "sweep_student": "P", "sweep": None, "nokd_sweep_lr": None, "fixed": {}, "general": {}, "train": {}}
    p = profile.profile_from_dict(raw)
    m = jobs.Matrix(p, [])
    assert m.student_block("P") == raw["students"]["P"]["model"]
    assert p.students["P"].shape_label() == "2L-256H" and p.student_variants("P") == ["no_kd", "kd_recipe"]
    assert p.variants["kd_recipe"].kd and p.variants["kd_recipe"].distill == {"hidden_weight": 1.0,
                                                                              "attention_weight": 1.0}


def test_profile_errors_name_the_key():
    raw = {"name": "x", "runs_dir": "r", "config_dir": "c", "tasks": {}, "variants": {},
           "students": {"B": {"model": {}, "seed": [1]}}}
    with pytest.raises(UserError, match=r"students\.B: unknown key\(s\) \['seed'\]"):
        profile.profile_from_dict(raw)
    with pytest.raises(UserError, match="no profile 'nope'"):
        profile.load_profile("nope")


def _cpu_with_recipes(tmp_path, changes):
    """The cpu profile's YAML with Bp's and Ap3's recipes copied to tmp_path, `changes` {recipe: fn(dict)} applied."""
    raw = yaml.safe_load((ROOT / "benchmarks" / "profiles" / "cpu.yaml").read_text(encoding="utf-8"))
    for student in ("Bp", "Ap3"):
        names = raw["students"][student]["recipe"]
        for task, name in names.items():
            recipe = yaml.safe_load((ROOT / "configs" / "recipes" / f"{name}.yaml").read_text(encoding="utf-8"))
            changes.get(name, lambda r: None)(recipe)
            copy_path = tmp_path / f"{name}.yaml"
            copy_path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
            names[task] = str(copy_path)
    return raw


def test_born_students_take_shape_and_hyperparameters_from_the_recipe_files(generated, tmp_path):
    _, m, stages = generated
    raw = yaml.safe_load((ROOT / "benchmarks" / "profiles" / "cpu.yaml").read_text(encoding="utf-8"))
    for student, speedup in (("Bp", 10), ("Ap3", 5)):
        assert raw["students"][student]["recipe"] == {"conll": f"ner_{speedup}x", "imdb": f"classification_{speedup}x"}
        assert not {"model", "hyperparameters"} & set(raw["students"][student])   # no copies in the profile
        for task, name in raw["students"][student]["recipe"].items():
            recipe = yaml.safe_load((ROOT / "configs" / "recipes" / f"{name}.yaml").read_text(encoding="utf-8"))
            assert m.student_block(student) == recipe["student"]["model"]["student"]
            lr = recipe["student"]["train"]["learning_rate"]
            assert m.p.students[student].own_hyperparameters(task) == {
                "temperature": recipe["student"]["distill"]["temperature"],
                "ce_weight": recipe["student"]["distill"]["ce_weight"], "learning_rate": lr, "nokd_learning_rate": lr}
    kd = stages["conll/Bp/kd_recipe/seed1"][-1].cfg
    assert (kd["model"]["student"]["hidden_size"], kd["distill"]["temperature"], kd["train"]["learning_rate"]) == (
        128, 4.0, 0.0005)

    # a value changed in (a copy of) a recipe reaches the generated configs of that student and task only
    def wider_and_hotter(recipe):
        recipe["student"]["model"]["student"]["intermediate_size"] = 256
        recipe["student"]["distill"]["temperature"] = 8.0
        recipe["student"]["train"]["learning_rate"] = 0.0003

    def narrower(recipe):
        recipe["student"]["model"]["student"]["intermediate_size"] = 256

    changed = jobs.Matrix(profile.profile_from_dict(_cpu_with_recipes(
        tmp_path, {"ner_10x": wider_and_hotter, "classification_10x": narrower})), ["conll", "imdb"])
    assert changed.student_block("Bp") == dict(m.student_block("Bp"), intermediate_size=256)
    assert changed.p.students["Bp"].own_hyperparameters("conll") == {
        "temperature": 8.0, "ce_weight": 0.5, "learning_rate": 0.0003, "nokd_learning_rate": 0.0003}
    assert changed.p.students["Bp"].own_hyperparameters("imdb") == m.p.students["Bp"].own_hyperparameters("imdb")
    assert changed.student_block("Ap3") == m.student_block("Ap3")


def test_recipe_students_refuse_copies_and_disagreeing_recipes(tmp_path):
    raw = _cpu_with_recipes(tmp_path, {})
    copied = copy.deepcopy(raw)
    copied["students"]["Bp"]["model"] = {"init": "teacher_pruned", "every_k": 3}
    with pytest.raises(UserError, match=r"students\.Bp: \['model'\] come from its recipe files"):
        profile.profile_from_dict(copied)
    one_task = copy.deepcopy(raw)
    del one_task["students"]["Bp"]["recipe"]["imdb"]
    with pytest.raises(UserError, match=r"students\.Bp\.recipe: expected a recipe name per task \['conll', 'imdb'\]"):
        profile.profile_from_dict(one_task)
    two_shapes = _cpu_with_recipes(tmp_path, {"ner_10x": lambda r: r["student"]["model"]["student"].update(num_heads=2)})
    with pytest.raises(UserError, match=r"students\.Bp\.recipe: the recipes' student\.model\.student blocks differ"):
        profile.profile_from_dict(two_shapes)
    no_temperature = _cpu_with_recipes(tmp_path, {"classification_5x": lambda r: r["student"]["distill"].clear()})
    with pytest.raises(UserError, match=r"classification_5x\.yaml: missing key student\.distill\.temperature"):
        profile.profile_from_dict(no_temperature)
