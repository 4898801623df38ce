"""Whole documents in the benchmark: latency per real review wired into the latency job and shown beside the
fixed-length numbers (no timing asserted: the timer is replaced)."""
from __future__ import annotations

from types import SimpleNamespace

from benchmarks import deploy, profile, reviews
from benchmarks.jobs import Job
from ernie_tiny_distill.data.examples import TextExample
from ernie_tiny_distill.deploy import latency_review


def test_latency_job_times_every_export_and_the_teacher_reading_windows(monkeypatch):
    p = profile.load_profile("cpu")
    assert p.latency["per_review"] == {"examples": 1000, "seed": 0}
    test = [TextExample(f"review number {i}", "pos") for i in range(50)]
    monkeypatch.setattr("ernie_tiny_distill.data.load.load_splits", lambda data, task: SimpleNamespace(test=test))
    seen = {}

    def fake(targets, texts, **kwargs):
        seen.update(targets=targets, texts=texts, kwargs=kwargs)
        return {t["key"]: {"model": "x", "p50_ms": 1.0, "p95_ms": 2.0} for t in targets}

    monkeypatch.setattr(latency_review, "measure_per_review", fake)
    m = SimpleNamespace(p=SimpleNamespace(**{**p.__dict__, "latency": dict(p.latency, per_review={"examples": 7,
                                                                                                    "seed": 3})}),
                        teacher_cfg=lambda t: SimpleNamespace(data=None, task="classification"))
    targets = [{"key": "teacher", "export_dir": "e/teacher", "backend": "paddle", "precision": "fp32", "seq_len": 128},
               {"key": "W-int8", "export_dir": "e/W-int8", "backend": "onnx", "precision": "int8", "seq_len": 128}]
    out = deploy.per_review_latency(m, Job("imdb/latency", "latency", "imdb"), targets)
    assert seen["texts"] == latency_review.sample_texts([e.text for e in test], 7, 3) and len(seen["texts"]) == 7
    assert [t["key"] for t in seen["targets"]] == ["teacher", "W-int8", "teacher-windows"]
    assert seen["targets"][2] == {"key": "teacher-windows", "export_dir": "e/teacher", "backend": "paddle",
                                  "precision": "fp32", "long_document": p.tasks["imdb"].whole_document.windows}
    assert seen["kwargs"] == {"num_threads": 1, "rounds": 5, "warmup": 3}
    assert out["examples"] == 7 and set(out["measured"]) == {"teacher", "W-int8", "teacher-windows"}
    assert "model" not in out["measured"]["teacher"]


def test_report_shows_per_review_latency_beside_the_fixed_length_p50():
    def r(p50, reads, windows=None, backend="paddle", precision="fp32"):
        return {"backend": backend, "precision": precision, "threads": 1, "rounds": 5, "reads": reads,
                "windows_mean": windows, "p50_ms": p50, "p95_ms": 2 * p50}

    extra = {"imdb": {"latency": {
        "measured": {"teacher": {"p50_ms": 10.0, "seq_len": 128}, "W": {"p50_ms": 1.0, "seq_len": 128}},
        "per_review": {"examples": 1000, "seed": 0, "measured": {
            "teacher": r(20.0, "head_tail 128"), "W": r(4.0, "windows of 128 (stride 63, max 16, mean)", 3.25),
            "teacher-windows": r(60.0, "windows of 128 (stride 63, max 16, mean)", 3.25)}}}}}
    m = SimpleNamespace(tasks=["imdb"], p=SimpleNamespace(tasks={"imdb": SimpleNamespace(title="IMDB sentiment")}))
    lines = reviews.per_review_lines(m, reviews.per_review_rows(m, extra))  # the rows results.json keeps
    assert lines[0] == "### IMDB sentiment: latency per real review"
    assert "| teacher | paddle fp32 | head_tail 128 | 1 | 20.00 | 40.00 | 1.00x | 10.00 (seq 128) |" in lines
    assert "| W | paddle fp32 | windows of 128 (stride 63, max 16, mean) | 3.25 | 4.00 | 8.00 | 5.00x | 1.00 (seq 128) |" \
        in lines
    assert ("| teacher-windows | paddle fp32 | windows of 128 (stride 63, max 16, mean) | 3.25 | 60.00 | 120.00 | "
            "0.33x | 10.00 (seq 128) |") in lines
    assert reviews.per_review_rows(m, {"imdb": {"latency": {"measured": {}}}}) == []


def test_ensemble_module_scores_a_configs_teachers_over_windows(deploy_root, cls_model, tmp_path):
    import json

    import yaml

    from ernie_tiny_distill.distill import ensemble

    cfg = {"task": "classification", "stage": "task", "output_dir": str(tmp_path / "run"),
           "data": {"format": "demo", "path": str(deploy_root["root"] / "demo"), "cache_dir": str(tmp_path / "c")},
           "model": {"teacher": cls_model, "max_seq_length": 16, "student": {"every_k": 1},
                     "long_document": {"mode": "windows", "max_windows": 4}},
           "distill": {"teachers": [{"path": cls_model}, {"tfidf": True, "weight": 2.0}]}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "scores" / "windows.json"
    assert ensemble.main(["--config", str(path), "--member", "0", "--out", str(out)]) == 0
    one = json.loads(out.read_text())
    assert [m["teacher"] for m in one["teachers"]] == [cls_model] and one["test"]["num_examples"] == one["test_examples"] > 0
    assert one["reads"] == {"max_seq_length": 16, "windows": {"stride": None, "max_windows": 4, "pooling": "mean"},
                            "truncation": None}
    assert ensemble.main(["--config", str(path), "--out", str(out)]) == 0
    both = json.loads(out.read_text())
    assert [(m["teacher"], m["weight"]) for m in both["teachers"]] == [(cls_model, 1.0), ("tfidf", 2.0)]
    assert both["teachers"][0]["test"] == one["test"] and both["dev"]["num_examples"] == both["dev_examples"] > 0
    assert ensemble.main(["--config", str(path), "--member", "5", "--out", str(out)]) == 2  # one-line error
