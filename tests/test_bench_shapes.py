"""The shape search's pure parts: candidate names, the teacher layers a candidate keeps, the overrides of its
run, and the choice of the dev-best candidate inside the speed budget."""
import pytest

from benchmarks import shapes
from ernie_tiny_distill.errors import UserError


def test_a_candidate_name_gives_its_shape():
    assert shapes.parse_candidate("3X160x4x256") == {"name": "3x160x4x256", "layers": 3, "hidden": 160,
                                                     "heads": 4, "ffn": 256}


@pytest.mark.parametrize("bad", ["3x160x4", "3x160x0x256", "ax160x4x256", "3x160x4x256x1"])
def test_a_malformed_candidate_is_refused(bad):
    with pytest.raises(UserError, match="LAYERSxHIDDENxHEADSxFFN"):
        shapes.parse_candidate(bad)


def test_kept_layers_are_spread_evenly_and_end_with_the_top_one():
    assert shapes.teacher_layers(2, 6) == [2, 5]   # the recipe's every third layer
    assert shapes.teacher_layers(3, 6) == [1, 3, 5]
    assert shapes.teacher_layers(4, 6) == [0, 2, 3, 5]
    assert shapes.teacher_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(UserError, match="1..6"):
        shapes.teacher_layers(7, 6)


def test_a_candidate_run_gets_its_shape_and_length():
    out = shapes.train_overrides(shapes.parse_candidate("3x160x4x256"), 6, "runs/s/3x160x4x256", 600)
    assert "model.student.layers=[1, 3, 5]" in out and "model.student.every_k=null" in out
    assert {"model.student.hidden_size=160", "model.student.num_heads=4", "model.student.intermediate_size=256",
            "train.max_steps=600", "train.eval_every=200", "output_dir=runs/s/3x160x4x256"} <= set(out)


def _row(name, dev, speedup):
    return dict(shapes.parse_candidate(name), dev=dev, speedup_model=speedup, teacher_layers=[2, 5],
                params=4.4e6, model_p50_ms=40 / speedup, request_p50_ms=45 / speedup, speedup_request=speedup * 0.9)


def test_the_dev_best_candidate_inside_the_budget_is_kept():
    rows = [_row("2x128x4x512", 0.86, 10.2), _row("3x160x4x256", 0.88, 9.1), _row("3x128x4x256", 0.87, 10.5)]
    assert shapes.choose(rows, 10) is rows[2]          # 3x160 is better on dev but slower than the budget
    assert shapes.choose(rows, 11) is None
    lines = shapes.table(rows, 10, "accuracy", 600)
    assert lines[2].startswith("| 3 × 128, 4 heads, FFN 256 **(kept)** | [2, 5] | 4.40M | 87.00 | 3.81 | 10.5x |")
    assert lines[-1].endswith("| 9.1x | 4.95 | 8.2x | no |")


def test_the_search_trains_exports_times_and_keeps_a_candidate(tmp_path_factory, demo_root, monkeypatch):
    """Two tiny candidates born from a briefly fine-tuned random teacher, through the real tools (in process)."""
    import json
    from pathlib import Path

    import yaml
    from helpers import ROOT, random_teacher_workspace, run_tool

    from ernie_tiny_distill.deploy import export as ex

    ws = random_teacher_workspace(tmp_path_factory, demo_root, "shapes", num_layers=2, hidden_size=32,
                                  num_heads=2, intermediate_size=64)
    root, small = ws["root"], ["data.max_train_examples=48", "data.max_dev_examples=16", "data.max_test_examples=16",
                               "model.max_seq_length=32", "train.batch_size=8", "train.num_threads=1",
                               "train.progress=false", "train.warmup_ratio=0"]
    teacher = root / "teacher"
    assert run_tool("train.py", "--config", ROOT / "configs" / "demo_cls_teacher.yaml", f"data.path={ws['demo']}",
                    f"model.teacher={ws['teacher']}", f"output_dir={teacher}", "train.max_steps=4",
                    "train.eval_every=2", *small).returncode == 0
    ex.export_model(str(teacher / "best"), str(root / "teacher_export"))
    config = root / "student.yaml"
    config.write_text(yaml.safe_dump({
        "task": "classification", "stage": "task", "output_dir": str(root / "unused"),
        "data": {"format": "demo", "path": ws["demo"], "cache_dir": str(root / "cache")},
        "model": {"teacher": str(teacher), "student": {"importance_examples": 16}},
        "distill": {"allow_weak_teacher": True}}))
    def run(cmd):   # [python, tools/X.py, args...], in this process
        if cmd[1].endswith("export.py"):
            ex.export_model(cmd[cmd.index("--model") + 1], cmd[cmd.index("--out") + 1])
        elif run_tool(Path(cmd[1]).name, *cmd[2:]).returncode != 0:
            pytest.fail(" ".join(cmd))

    monkeypatch.setattr(shapes, "_run", run)
    out = root / "search"
    assert shapes.main(["--config", str(config), "--teacher-export", str(root / "teacher_export"), "--out", str(out),
                        "--candidate", "1x16x1x16", "--candidate", "2x32x2x32", "--steps", "3", "--budget", "0.01",
                        "--texts", "8", *small]) == 0
    result = json.loads((out / "shapes.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["1x16x1x16", "2x32x2x32"]
    assert [r["teacher_layers"] for r in result["rows"]] == [[1], [0, 1]]
    for r in result["rows"]:
        summary = json.loads((out / r["name"] / "summary.json").read_text())
        assert r["dev"] == summary["dev"]["accuracy"] and r["params"] == summary["params"]
        assert r["speedup_model"] == pytest.approx(result["teacher"]["model_p50_ms"] / r["model_p50_ms"])
    assert "**(kept)**" in (out / "shapes.md").read_text()
