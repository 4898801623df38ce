"""The cpu profile YAML generates, byte for byte, the stage configs committed under configs/bench/.

The student rows' configs depend on the hyper-parameters the dev sweep chose; they are given here as recorded in
docs/benchmarks.md ("Hyper-parameters chosen on dev"), so the test needs no runs.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from benchmarks import deploy, jobs, profile
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CHOSEN = {"conll": {"temperature": 4.0, "ce_weight": 0.5, "learning_rate": 0.002, "nokd_learning_rate": 0.002},
          "imdb": {"temperature": 2.0, "ce_weight": 0.5, "learning_rate": 0.001, "nokd_learning_rate": 0.0005}}


def test_cpu_profile_generates_the_committed_configs(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    for name in ("conll_teacher.yaml", "imdb_teacher.yaml"):
        shutil.copy(ROOT / "configs" / name, tmp_path / "configs" / name)
    for task, chosen in CHOSEN.items():
        select = tmp_path / "runs" / "bench" / "results" / task / "B" / "sweep" / "select.json"
        select.parent.mkdir(parents=True)
        select.write_text(json.dumps({"status": "done", "chosen": chosen}))
    (tmp_path / "runs" / "bench" / "conll").mkdir()
    (tmp_path / "runs" / "bench" / "conll" / "unlabeled.txt").write_text("")   # written from CoNLL otherwise
    monkeypatch.chdir(tmp_path)
    m = jobs.Matrix(profile.load_profile("cpu"), ["conll", "imdb"])
    for job in m.jobs():
        if job.kind == "train":
            m.stages(job)
    generated = sorted(os.listdir(tmp_path / "configs" / "bench"))
    committed = sorted(p.name for p in (ROOT / "configs" / "bench").glob("*.yaml"))
    # 50 random-init rows, 53 born from the teacher, 2 pretrained-small, 7 whole-document students (issue 13)
    assert generated == committed and len(committed) == 113
    for name in committed:
        assert (tmp_path / "configs" / "bench" / name).read_bytes() == (ROOT / "configs" / "bench" / name).read_bytes(), name
    # issue 13: the teacher over windows and the ensemble are scored from the whole-document student's config
    by_name = {j.name: j for j in m.jobs()}
    assert by_name["imdb/W/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble", "imdb/Bp/task_kd_transfer50k/seed1"]
    assert deploy.teachers_command(m, by_name["imdb/teacher/windows"]) == (
        "python -m ernie_tiny_distill.distill.ensemble --config configs/bench/imdb_W_ensemble_kd_seed1.yaml --member 0 "
        "--out runs/bench/imdb/teachers/windows.json")
    assert {"imdb/export/W", "imdb/int8/W"} <= set(by_name["imdb/latency"].deps)
    # the other whole-document students share the teachers' jobs and start from their own student's run
    assert by_name["imdb/W3/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble",
                                                         "imdb/Ap3/task_kd_transfer50k_2ep/seed1"]
    assert {"imdb/export/W3", "imdb/int8/W3", "imdb/export/W3lr", "imdb/int8/W3lr"} <= set(by_name["imdb/latency"].deps)
    assert not any(name.startswith("conll/") and "W" in name.split("/") for name in by_name)
    # the wide-and-deep student waits for its transformer's row and export, and fits stage 'wide' on all reviews
    assert by_name["imdb/W3w/wide_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble", "imdb/W3/ensemble_kd/seed1",
                                                      "imdb/export/W3"]
    wide = m.stages(by_name["imdb/W3w/wide_kd/seed1"])[0].cfg
    assert (wide["stage"], wide["model"]["student"]["path"], wide["model"]["wide"]["deep_export"],
            wide["data"]["max_train_examples"]) == ("wide", "runs/bench/imdb/W3/ensemble_kd/seed1/best",
                                                    "runs/bench/imdb/export/W3", None)
    assert {"imdb/export/W3w", "imdb/int8/W3w"} <= set(by_name["imdb/latency"].deps)
    # a student that continues an earlier one waits for that row and starts from its best/ checkpoint
    assert by_name["imdb/W4/ensemble_kd/seed1"].deps == ["imdb/teacher", "imdb/ensemble", "imdb/W3/ensemble_kd/seed1"]
    w4 = m.stages(by_name["imdb/W4/ensemble_kd/seed1"])[0].cfg
    assert (w4["stage"], w4["model"]["student"]["init"], w4["model"]["student"]["path"],
            [t["tfidf"] for t in w4["distill"]["teachers"]]) == (
        "task", "pretrained", "runs/bench/imdb/W3/ensemble_kd/seed1/best", [True])


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
