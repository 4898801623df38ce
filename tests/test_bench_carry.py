"""A report whose rows all come from the committed results (no run gives anything new) leaves the committed
results.json, benchmarks markdown and README table byte-identical: carried-over content is carried whole."""
import json
from pathlib import Path

from test_bench_rules import _profile

from benchmarks.cli import main as reproduce_main
from benchmarks.report import README_BEGIN, README_END

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
