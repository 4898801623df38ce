"""Runs never overwrite a model they read (ensemble teachers, the init student, exports they score through), never
start from an unfinished or mismatched student run, and never replace a finished best/ without train.overwrite."""
import json
import os

import pytest
from test_rundir import config, snapshot, ws  # noqa: F401  (ws: the module fixture the configs use)

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.train.stages import run_stage


@pytest.fixture(scope="module")
def finished(ws):  # noqa: F811
    return run_stage(config(ws, "trust/finished"))


# ------------------------------------------------------------------ every model directory a run reads


@pytest.mark.parametrize("relation", ["is", "is inside", "contains"])
def test_output_dir_over_an_ensemble_teacher_is_refused(ws, finished, relation):  # noqa: F811
    run = finished["output_dir"]
    before = snapshot(run)
    out = {"is": run, "is inside": os.path.join(run, "student"), "contains": os.path.dirname(run)}[relation]
    cfg = config(ws, "unused", stage="task", model={"teacher": ws["teacher"]},
                 distill={"teachers": [{"path": run, "weight": 1.0}], "allow_weak_teacher": True})
    cfg.output_dir = out
    with pytest.raises(UserError, match=rf"^distill\.teachers\[0\]\.path={run}: output_dir {out} {relation} the "
                                        r"directory this run reads its model from"):
        run_stage(cfg)
    assert snapshot(run) == before


def test_output_dir_over_the_export_a_wide_stage_scores_through_is_refused(ws, finished, tmp_path):  # noqa: F811
    cfg = config(ws, "unused", stage="task", model={"teacher": ws["teacher"]},
                 distill={"teachers": [{"path": finished["output_dir"], "export": str(tmp_path / "exp"),
                                        "weight": 1.0}]})
    (tmp_path / "exp").mkdir()
    cfg.output_dir = str(tmp_path / "exp")
    with pytest.raises(UserError, match=r"^distill\.teachers\[0\]\.export=.*output_dir .* is the directory"):
        run_stage(cfg)


def test_output_dir_over_the_init_student_is_refused(ws, finished):  # noqa: F811
    run = finished["output_dir"]
    cfg = config(ws, "unused", stage="task", model={"student": {"init": "pretrained", "path": run}},
                 distill={"allow_weak_teacher": True})
    cfg.output_dir = run
    with pytest.raises(UserError, match=rf"^model\.student\.path={run}: output_dir {run} is the directory"):
        run_stage(cfg)


# ------------------------------------------------------------------ a student inherited from another run


def test_student_from_an_unfinished_run_is_refused(ws, finished, tmp_path):  # noqa: F811
    import shutil

    unfinished = str(tmp_path / "unfinished")
    shutil.copytree(finished["output_dir"], unfinished)
    os.remove(os.path.join(unfinished, "summary.json"))  # still training (or killed): its best/ may change
    for path in (unfinished, os.path.join(unfinished, "best")):
        cfg = config(ws, "from_unfinished", stage="task", model={"student": {"init": "pretrained", "path": path}},
                     distill={"allow_weak_teacher": True})
        with pytest.raises(UserError, match=rf"^config key 'model\.student\.path': {path} is the output of a run "
                                            r"that has not finished \(no summary\.json in .*unfinished\)"
                                            r"[\s\S]*hint: finish that run"):
            run_stage(cfg)


def test_student_trained_on_other_labels_is_refused(ws, finished, tmp_path):  # noqa: F811
    import shutil

    other = str(tmp_path / "other_labels")
    shutil.copytree(finished["output_dir"], other)
    task_file = os.path.join(other, "best", "task.json")
    meta = json.load(open(task_file, encoding="utf-8"))
    meta["labels"] = ["a", "b"]
    json.dump(meta, open(task_file, "w", encoding="utf-8"))
    cfg = config(ws, "from_other_labels", stage="task", model={"student": {"init": "pretrained", "path": other}},
                 distill={"allow_weak_teacher": True})
    with pytest.raises(UserError, match=r"^config key 'model\.student\.path': .*other_labels was trained with labels "
                                        r"\['a', 'b'\] but this run's data has \['neg', 'pos'\]"):
        run_stage(cfg)


# ------------------------------------------------------------------ a finished best/ is kept


def test_rerun_with_a_changed_override_keeps_the_finished_best(ws):  # noqa: F811
    run = run_stage(config(ws, "trust_rerun"))
    before = snapshot(run["output_dir"])
    with pytest.raises(UserError, match=r"holds a finished run; .*best/ would be replaced[\s\S]*hint: choose another "
                                        r"output_dir for the new run, or set train\.overwrite=true"):
        run_stage(config(ws, "trust_rerun", train={"max_steps": 5}))
    assert snapshot(run["output_dir"]) == before
    again = run_stage(config(ws, "trust_rerun", train={"max_steps": 5, "overwrite": True}))
    assert again["history"] != run["history"]
