"""Schedules that fit the data (train.min_steps, train.patience, evaluations per run) and the recipe files."""
import pytest
from helpers import demo_ner_teacher

from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.pipeline import teacher_check
from ernie_tiny_distill.pipeline.recipes import Options, data_section, load_recipe, planned_steps, with_schedule
from ernie_tiny_distill.train.stages import run_stage
from ernie_tiny_distill.train.trainer import plateaued


def test_plateau_counts_evaluations_after_the_best():
    history = [{"step": 10}, {"step": 20}, {"step": 30}, {"step": 40}]
    assert plateaued(history, best_step=20, patience=2) is True
    assert plateaued(history, best_step=30, patience=2) is False
    assert plateaued(history, best_step=20, patience=None) is False
    assert plateaued([], best_step=None, patience=1) is False


def test_steps_have_a_floor_and_evaluations_scale_with_them():
    assert planned_steps(100, {"epochs": 3, "batch_size": 32}) == 12  # 4 batches x 3 epochs
    assert planned_steps(100, {"epochs": 3, "batch_size": 32, "min_steps": 300}) == 300
    assert planned_steps(10000, {"epochs": 3, "batch_size": 32, "min_steps": 300}) == 939
    raw = with_schedule({"train": {"epochs": 3, "batch_size": 32, "min_steps": 300}}, 100, evaluations=10)
    assert raw["train"]["eval_every"] == 30
    assert with_schedule({"train": {"epochs": 1, "batch_size": 8}}, 8, evaluations=10)["train"]["eval_every"] == 1
    # the user's overrides count: 100 examples at batch 10, 3 epochs = 30 steps -> every 3
    recipe = {"train": {"epochs": 3, "batch_size": 32}}
    assert with_schedule(recipe, 100, 10, ["train.batch_size=10"])["train"] == {"epochs": 3, "batch_size": 32,
                                                                               "eval_every": 3}


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_the_recipes_hold_the_planned_shapes_and_load_as_configs(task, tmp_path):
    shapes = {5: {"every_k": 2, "num_heads": 4, "intermediate_size": 384},
              10: {"every_k": 3, "num_heads": 4, "intermediate_size": 512, "hidden_size": 128}}
    temperature = {"classification": 2.0, "ner": 4.0}[task]
    for speedup, shape in shapes.items():
        recipe = load_recipe(task, speedup)
        student = recipe["student"]["model"]["student"]
        assert student == {"init": "teacher_pruned", **shape}
        d = recipe["student"]["distill"]
        # the 10x classifier learns from logits alone on a many-copy transfer set; the others also match states
        intermediate = 0.0 if (task, speedup) == ("classification", 10) else 1.0
        assert (d["temperature"], d["ce_weight"], d["hidden_weight"], d["attention_weight"]) == (
            temperature, 0.5, intermediate, intermediate)
        assert recipe["control"]["distill"]["kd_weight"] == 0.0
        for role, stage in (("teacher", "teacher"), ("student", "task")):
            raw = {"task": task, "stage": stage, "output_dir": str(tmp_path / role), **recipe[role]}
            raw["model"] = {**raw["model"], "teacher": "minilm"}
            config_from_dict(raw)  # every recipe key is a real config key


def test_file_formats_are_guessed_and_passed_through(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,b\n", encoding="utf-8")
    lines = tmp_path / "train.txt"
    lines.write_text("b a\n", encoding="utf-8")
    assert data_section(Options(task="classification", train=str(train), out="x"))["format"] == "csv"
    section = data_section(Options(task="classification", train=str(lines), out="x", encoding="latin-1"))
    assert (section["format"], section["encoding"], section["max_test_examples"]) == ("label_text", "latin-1", 0)
    assert data_section(Options(task="ner", train=str(lines), out="x"))["format"] == "conll"


def test_the_teacher_curve_says_when_it_still_improves():
    rising = [{"step": 10, "accuracy": 0.5}, {"step": 20, "accuracy": 0.6}, {"step": 30, "accuracy": 0.7}]
    flat = rising + [{"step": 40, "accuracy": 0.69}]
    assert teacher_check.curve(rising, "accuracy")["still_improving"] is True
    # a final evaluation two steps after the last regular one: the gain is measured over a whole interval
    tail = rising + [{"step": 32, "accuracy": 0.7}]
    assert teacher_check.curve(tail, "accuracy")["last_gain"] == pytest.approx(0.1)
    assert teacher_check.curve(tail, "accuracy")["still_improving"] is True
    assert teacher_check.curve(flat, "accuracy") == {"evaluations": 4, "best_at": 30, "last_gain": -0.01,
                                                     "still_improving": False}
    # the final evaluation five steps after a regular one (interval 7) equals it: the gain is measured against the
    # evaluation a whole interval back, where the curve was still rising
    steps = [{"step": 7 * i, "f1": f} for i, f in enumerate([0.3, 0.47, 0.65, 0.71, 0.7407, 0.749], start=5)]
    late = steps + [{"step": 75, "f1": 0.749}]
    assert teacher_check.curve(late, "f1")["last_gain"] == pytest.approx(0.749 - 0.7407)
    assert teacher_check.curve(late, "f1")["still_improving"] is True
    summary = {"metric_name": "accuracy", "dev": {"accuracy": 0.7}, "history": flat}
    check = teacher_check.assess(summary, {"dev_accuracy": 0.8})
    assert check["below_baseline"] and teacher_check.needs_more_training(check)
    assert not teacher_check.needs_more_training(teacher_check.assess(summary, {"dev_accuracy": 0.6}))


def test_the_trainer_keeps_min_steps_and_stops_on_a_plateau(tmp_path):
    """At a learning rate of 1e-12 the dev score never changes: best at the first evaluation, then patience 2
    stops after two more; without patience the run lasts min_steps, not one epoch."""
    base = demo_ner_teacher(tmp_path, "teacher", num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32)

    def run(name, **train):
        raw = {"task": "ner", "stage": "teacher", "output_dir": str(tmp_path / name),
               "data": {"format": "demo", "path": str(tmp_path / "demo"), "max_train_examples": 16,
                        "max_dev_examples": 8, "max_test_examples": 0},
               "model": {"teacher": base, "max_seq_length": 32},
               "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-12, "eval_every": 1, "progress": False,
                         "num_threads": 1, **train}}
        return run_stage(config_from_dict(raw))

    stopped = run("patience", min_steps=10, patience=2)
    assert (stopped["total_steps"], stopped["best_step"], stopped["stopped_early"]) == (10, 1, 3)
    assert [h["step"] for h in stopped["history"]] == [1, 2, 3]
    full = run("floor", min_steps=5)
    assert (full["total_steps"], full["stopped_early"], len(full["history"])) == (5, None, 5)


def test_the_time_estimate_is_the_per_example_model_it_states():
    from ernie_tiny_distill.pipeline import measure

    est = measure.estimate(0.01, teacher_steps=100, student_steps=200, control_steps=0, batch=32, speedup=10,
                           student_epochs=2.0, evals={"teacher": 10, "student": 10}, dev=300, test=0,
                           importance_examples=1000)
    share, student = measure.FORWARD_SHARE, measure.STUDENT_STEP_SHARE / 10
    assert est["parts"] == {"teacher fine-tuning": 32.0, "teacher dev evaluations": round(10 * 300 * 0.01 * share, 1),
                            "importance (pruning)": 10.0,
                            "distillation": round(200 * 32 * 0.01 * (share / 2 + student), 1),
                            "student dev evaluations": round(10 * 300 * 0.01 * share / 10, 1),
                            "export, test scores, latency": float(measure.EXPORT_SECONDS)}
    assert est["seconds"] == round(sum(est["parts"].values()), 1) and "control (no KD)" not in est["parts"]


def test_an_assistant_section_names_a_recipe_one_level_deep(tmp_path):
    from ernie_tiny_distill.errors import UserError
    from ernie_tiny_distill.pipeline.recipes import RECIPE_DIR

    base = (RECIPE_DIR / "classification_10x.yaml").read_text(encoding="utf-8").split("\nassistant:")[0]

    def recipe(name, assistant):
        path = tmp_path / name
        path.write_text(base + "\nassistant: " + assistant + "\n", encoding="utf-8")
        return str(path)

    # a bare file name is a built-in recipe; its student section is what the assistant trains
    built_in = load_recipe("classification", 10, recipe("a.yaml", "{recipe: classification_5x.yaml}"))
    assert built_in["assistant"] == {"recipe": str(RECIPE_DIR / "classification_5x.yaml"), "weight": 1.0,
                                     "student": load_recipe("classification", 5)["student"]}
    for bad, message in (("{recipe: classification_5x.yaml, copies: 3}", "takes the keys recipe"),
                         ("{recipe: classification_5x.yaml, weight: 0}", "above 0"),
                         ("{recipe: nothing.yaml}", "recipe file not found"),
                         ("{recipe: " + str(tmp_path / "a.yaml") + "}", "one level only")):
        with pytest.raises(UserError, match=message):
            load_recipe("classification", 10, recipe("b.yaml", bad))
