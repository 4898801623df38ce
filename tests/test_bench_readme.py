"""The README's generated results table: which rows it picks and what each cell says."""
from benchmarks.readme_table import readme_rows, readme_table


def _row(model, variant, metric, dev, pct, speedup, layers=2, hidden=128, **extra):
    return dict({"task": "imdb", "dataset": "IMDB sentiment", "metric_name": "accuracy", "model": model,
                 "variant": variant, "layers": layers, "hidden": hidden, "metric": metric, "metric_std": None,
                 "seeds": [1], "dev_metric": dev, "pct_of_teacher": pct, "speedup_vs_teacher": speedup,
                 "latency_seq_len": 128}, **extra)


TEACHER = _row("teacher MiniLM-L6-H384", "teacher", 0.86, 0.864, 100.0, 1.0, layers=6, hidden=384, seeds=None)
BORN = "student Bp 2L-128H (pruned)"
ROWS = [
    TEACHER,
    _row(BORN, "no_kd", 0.83, 0.843, 96.5, 9.9),
    # best on dev but not on test: the table follows dev, as a user would
    _row(BORN, "kd_recipe", 0.85, 0.862, 98.8, 9.9, metric_std=0.0022, seeds=[1, 2, 3]),
    _row(BORN, "kd_recipe_aug", 0.86, 0.850, 100.0, 9.9),
    _row(BORN + " (kd_recipe seed 1, ONNX Runtime INT8)", "int8", 0.852, 0.862, 99.1, 40.2),
    _row(BORN + " (no_kd seed 1, ONNX Runtime INT8)", "int8", 0.9, 0.9, 104.7, 41.0),   # another run's export
    _row("student B 2L-128H", "task_kd", 0.834, 0.842, 97.0, 11.3, carried="an earlier run"),
    # reads more than the teacher: never in the short table, however good on dev
    _row("student W 2L-128H (pruned), whole document", "ensemble_kd", 0.88, 0.95, 102.3, 4.0,
         latency_seq_len=None, document_student="W", latency_per="review"),
    _row("student B 2L-128H, 512 tokens", "len512", 0.73, 0.99, 84.9, 3.4, latency_seq_len=512),
    _row("student Ap 2L-384H (pruned)", "no_kd", 0.84, 0.99, 97.7, 5.4, hidden=384),      # not a recipe shape
    _row("student P3 3L-384H (pretrained)", "kd_recipe", 0.81, 0.85, 94.2, 1.9, layers=3, hidden=384),
    _row("student Ap3 3L-384H (pruned)", "task_kd", 0.854, 0.877, 99.3, 5.4, layers=3, hidden=384),
    # taught by another (stronger) teacher: its % of teacher would not compare with the teacher row
    _row(BORN, "kd_recipe_full_teacher", 0.87, 0.99, 101.2, 9.9, taught_by="teacher_full"),
    _row("TF-IDF + LR (25000 reviews)", "tfidf_lr", 0.906, 0.912, 105.4, 33.4, layers=None, hidden=None),
    dict(TEACHER, task="conll", metric=None),                                             # not finished
]


def test_picks_the_teacher_and_per_shape_the_best_student_on_dev_and_its_own_int8_export():
    picked = [(item["kind"], item["row"]["model"], item["row"]["variant"]) for item in readme_rows(ROWS, ["imdb"])]
    assert picked == [("teacher", "teacher MiniLM-L6-H384", "teacher"),
                      ("student", BORN, "kd_recipe"),
                      ("int8", BORN + " (kd_recipe seed 1, ONNX Runtime INT8)", "int8"),
                      ("student", "student Ap3 3L-384H (pruned)", "task_kd")]
    assert readme_rows(ROWS, ["conll"]) == []


def test_cells_name_the_model_in_plain_words_with_metric_percent_and_speedup():
    text = readme_table(ROWS, ["imdb", "conll"], "python tools/reproduce.py --report-only")
    lines = text.splitlines()
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    assert table == [
        ["task", "model", "test metric", "% of teacher", "speed-up"],
        ["---", "---", "---", "---", "---"],
        ["IMDB sentiment", "teacher, 6 layers x 384 (MiniLM-L6-H384)", "accuracy 86.00", "100.0", "1.0×"],
        ["IMDB sentiment", "student, 2 layers x 128 (born from the teacher)", "accuracy 85.00 ± 0.22 (3 seeds)",
         "98.8", "9.9×"],
        ["IMDB sentiment", "student, 2 layers x 128 (born from the teacher), INT8 export of seed 1", "accuracy 85.20",
         "99.1", "40.2×"],
        ["IMDB sentiment", "student, 3 layers x 384 (born from the teacher)", "accuracy 85.40", "99.3", "5.4×"]]
    assert "of 128 tokens" in lines[-1] and "(docs/benchmarks.md)" in lines[-1]
    assert "`python tools/reproduce.py --report-only`" in lines[-1]


def test_a_carried_row_is_marked_and_students_not_born_from_the_teacher_say_so():
    rows = [TEACHER, _row("student B 2L-128H", "task_kd", 0.834, 0.842, 97.0, 11.3, carried="an earlier run"),
            _row("student P3 3L-384H (pretrained)", "kd_recipe", 0.81, 0.85, 94.2, 1.9, layers=3, hidden=384)]
    text = readme_table(rows, ["imdb"], "cmd")
    assert "| student, 2 layers x 128 (from a random encoder), earlier run | accuracy 83.40 | 97.0 | 11.3× |" in text
    assert "| student, 3 layers x 384 (pretrained separately) | accuracy 81.00 | 94.2 | 1.9× |" in text
    assert "that run's teacher" in text.splitlines()[-1]
