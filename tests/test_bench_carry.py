"""A report whose rows all come from the committed results (no run gives anything new) leaves the committed
results.json, benchmarks markdown and README table byte-identical: carried-over content is carried whole."""
import json
from pathlib import Path

import pytest
from test_bench_rules import _profile

from benchmarks.cli import main as reproduce_main
from benchmarks.report import README_BEGIN, README_END
from ernie_tiny_distill.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _real_rows(n: int):
    """The first `n` committed rows (every field the renderers read), as rows of the tiny profile's task."""
    rows = json.loads((ROOT / "benchmarks" / "results.json").read_text())[:n]
    return [dict(r, task="demo") for r in rows]


def _committed(out: Path, rows):
    (out / "benchmarks").mkdir(parents=True)
    (out / "docs").mkdir()
    (out / "benchmarks" / "results.json").write_text(json.dumps(rows, indent=2))
    # hand-written sections the runs of this machine cannot give (data lines, per-review latency tables)
    (out / "docs" / "benchmarks_tiny.md").write_text("- Data: 14041 labeled training examples\n"
                                                    "### demo: latency per real review\n")
    (out / "README.md").write_text(f"x\n{README_BEGIN}\n| demo | teacher | teacher | 90.00 |\n{README_END}\n")
    return {p: p.read_bytes() for p in [out / "benchmarks" / "results.json", out / "docs" / "benchmarks_tiny.md",
                                        out / "README.md"]}


def test_report_without_runs_keeps_committed_files_byte_identical(tmp_path):
    rows = _real_rows(2)
    rows[1]["carried"] = "elsewhere"
    before = _committed(tmp_path / "out", rows)
    outcome = reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only", "--keep-committed-rows"],
                             profiles={"tiny": lambda: _profile(tmp_path)})
    assert {p: p.read_bytes() for p in before} == before
    assert outcome["report"] == {"unchanged": str(tmp_path / "out" / "benchmarks" / "results.json")}
    assert not (tmp_path / "out" / "docs" / "pareto_tiny.png").exists()


def test_force_report_still_rewrites_and_marks_rows_without_runs(tmp_path):
    rows = _real_rows(1)
    _committed(tmp_path / "out", rows)
    reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only", "--keep-committed-rows",
                    "--force-report"], profiles={"tiny": lambda: _profile(tmp_path)})
    written = json.loads((tmp_path / "out" / "benchmarks" / "results.json").read_text())
    assert [(r["model"], r.get("carried")) for r in written if r.get("metric") is not None] == [
        (rows[0]["model"], "an earlier run of this profile (benchmarks/results.json)")]


REVIEW_ROW = {"task": "demo", "model": "teacher", "variant": "latency_per_review", "metric": None, "examples": 50,
              "seed": 0, "threads": 1, "rounds": 5, "backend": "paddle", "precision": "fp32", "reads": "head 128",
              "windows_mean": None, "p50_ms": 20.0, "p95_ms": 30.0, "teacher_p50_ms": 20.0, "fixed_p50_ms": 16.0,
              "fixed_seq_len": 128}


def test_per_review_rows_render_the_table():
    from types import SimpleNamespace

    from benchmarks.reviews import per_review_lines, per_review_rows

    m = SimpleNamespace(tasks=["demo"], p=SimpleNamespace(tasks={"demo": SimpleNamespace(title="Demo")}))
    student = {"threads": 1, "rounds": 5, "backend": "onnx", "precision": "int8", "reads": "head 128",
               "windows_mean": 2.5, "p50_ms": 4.0, "p95_ms": 6.0}
    extra = {"demo": {"latency": {
        "measured": {"teacher": {"p50_ms": 16.0, "seq_len": 128}, "B-int8": {"p50_ms": 1.0, "seq_len": 128}},
        "per_review": {"examples": 50, "seed": 0, "measured": {
            "teacher": {k: REVIEW_ROW[k] for k in ("threads", "rounds", "backend", "precision", "reads",
                                                  "windows_mean", "p50_ms", "p95_ms")},
            "B-int8": student}}}}}
    rows = per_review_rows(m, extra)
    assert rows[0] == REVIEW_ROW
    lines = per_review_lines(m, json.loads(json.dumps(rows)))  # as read back from results.json
    assert lines[0] == "### Demo: latency per real review"
    assert lines[-3:] == ["| teacher | paddle fp32 | head 128 | 1 | 20.00 | 30.00 | 1.00x | 16.00 (seq 128) |",
                          "| B-int8 | onnx int8 | head 128 | 2.50 | 4.00 | 6.00 | 5.00x | 1.00 (seq 128) |", ""]


def test_report_refuses_to_drop_a_per_review_table_and_carries_its_rows(tmp_path):
    profiles = {"tiny": lambda: _profile(tmp_path)}
    out = tmp_path / "out"
    _committed(out, _real_rows(1))
    (out / "docs" / "benchmarks_tiny.md").write_text("### demo: latency per real review\n")
    (out / "benchmarks" / "results.json").write_text("[]")  # no row to lose, but the markdown's table
    with pytest.raises(UserError, match=r"would be lost \(e\.g\. demo / latency per real review\)"):
        reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only"], profiles=profiles)
    (out / "benchmarks" / "results.json").write_text(json.dumps(_real_rows(1) + [REVIEW_ROW]))
    reproduce_main(["--task", "demo", "--profile", "tiny", "--report-only", "--keep-committed-rows",
                    "--force-report"], profiles=profiles)
    written = json.loads((out / "benchmarks" / "results.json").read_text())
    review = [r for r in written if r["variant"] == "latency_per_review"]
    assert review == [dict(REVIEW_ROW, carried="an earlier run of this profile (benchmarks/results.json)")]
    md = (out / "docs" / "benchmarks_tiny.md").read_text()
    assert "| teacher | paddle fp32 | head 128 | 1 | 20.00 | 30.00 | 1.00x | 16.00 (seq 128) |" in md
    assert "† carried over from an earlier run of this profile (benchmarks/results.json)." in md
