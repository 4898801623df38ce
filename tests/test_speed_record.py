"""Recording a speed run (benchmarks/speed_record.py): only the speed section, the speed results file and the
README table's end-to-end speed-ups change; the rest of the report stays as it was."""
import json

import pytest

from benchmarks import speed_record
from benchmarks.report import README_BEGIN, README_END
from ernie_tiny_distill.errors import UserError
from tests.test_speed_goals import RESULT

DOC = ("# Benchmarks\n\nintro\n\n## Speed, end to end\n\nold figures\n| old | table |\n\n"
       "## Summary\n\n- kept as it is\n")
ROWS = [{"task": "conll", "model": "teacher MiniLM-L6-H384", "variant": "teacher", "metric": 0.86,
         "metric_name": "f1", "layers": 6, "hidden": 384, "pct_of_teacher": 100.0, "speedup_vs_teacher": 1.0,
         "dataset": "CoNLL-2003 NER"},
        {"task": "conll", "model": "student (pruned)", "variant": "kd", "metric": 0.80, "dev_metric": 0.81,
         "metric_name": "f1", "layers": 2, "hidden": 128, "pct_of_teacher": 93.0, "speedup_vs_teacher": 10.4,
         "dataset": "CoNLL-2003 NER"}]


def _root(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text(DOC, encoding="utf-8")
    (tmp_path / "benchmarks" / "results.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (tmp_path / "README.md").write_text(f"# Project\n\n{README_BEGIN}\nold table\n{README_END}\n\nmore\n",
                                        encoding="utf-8")
    return tmp_path


def test_only_the_speed_section_is_replaced():
    out = speed_record.replace_section(DOC, ["## Speed, end to end", "", "new figures", ""])
    assert out == "# Benchmarks\n\nintro\n\n## Speed, end to end\n\nnew figures\n\n## Summary\n\n- kept as it is\n"


def test_a_report_without_a_speed_section_is_an_error_naming_it():
    with pytest.raises(UserError, match="Speed, end to end"):
        speed_record.replace_section("# Benchmarks\n\n## Summary\n", ["## Speed, end to end"])


def test_record_writes_the_results_the_section_and_the_readme_speed_ups(tmp_path):
    root = _root(tmp_path)
    written = speed_record.record(dict(RESULT, load_average_1min={"start": 1.5, "end": 1.2}), str(root))
    assert set(written) == {"results", "markdown", "readme"}
    assert json.loads((root / "benchmarks" / "speed_results.json").read_text())["tasks"] == RESULT["tasks"]
    doc = (root / "docs" / "benchmarks.md").read_text()
    assert "old figures" not in doc and "1-min load average 1.5 at the start and 1.2 at the end" in doc
    assert doc.endswith("\n\n## Summary\n\n- kept as it is\n")
    readme = (root / "README.md").read_text()
    # the 2 x 128 student's end-to-end figure: teacher p50 20 ms / student p50 2 ms
    assert "| CoNLL-2003 NER | student, 2 layers x 128 (born from the teacher) | entity F1 80.00 | 93.0 | 10.0× end to end |" in readme
    assert "old table" not in readme and readme.endswith(f"{README_END}\n\nmore\n")


def test_a_result_without_tasks_is_refused_and_nothing_is_written(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(UserError, match="no tasks"):
        speed_record.record({"tasks": {}}, str(root))
    assert (root / "docs" / "benchmarks.md").read_text() == DOC
    assert not (root / "benchmarks" / "speed_results.json").exists()
