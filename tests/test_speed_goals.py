"""The end-to-end speed goals (benchmarks/speed_goals.py), the per-request timing that feeds them, and the README's
speed-up column taking the end-to-end figure where one was measured."""
import pytest

from benchmarks import speed_goals
from benchmarks.readme_table import readme_table


def _model(p50, engine, backend="onnx", outside=0.05):
    return {"p50_ms": p50, "p95_ms": 2 * p50, "backend_used": backend, "outside_engine_p50_ms": outside,
            "cpu_p50_ms": p50 / 2,
            "stages_ms": {"tokenize": 0.1, "pack": 0.01, "engine": engine, "decode": 0.02}}


def _engine(backend, floor, exact, bucketed):
    return {"backend": backend, "floor_ms": floor, "penalty_exact": exact, "penalty_bucketed": bucketed}


RESULT = {"tasks": {"conll": {
    "per_request": {"teacher fp32": _model(20.0, 18.0, backend="paddle", outside=0.5),
                    "student fp32": _model(2.0, 1.5, outside=0.08),
                    "student int8": _model(0.5, 0.3),
                    "A'3 fp32": _model(4.0, 3.0)},
    "per_request_cold": {"teacher fp32": _model(21.0, 18.0, backend="paddle", outside=0.9),
                         "student fp32": _model(3.0, 1.5, outside=0.6)},
    "engine": {"student": [_engine("paddle", 2.0, 0.9, 0.05), _engine("onnx", 0.25, 0.02, 0.3)],
               "teacher": [_engine("paddle", 6.0, 2.0, 0.15), _engine("onnx", 3.0, 0.0, 0.0)]},
    "serve": [{"concurrency": 8, "requests": 2000, "share": 0.5, "p50_ms": 1.0, "p99_ms": 9.0, "requests_per_s": 500.0,
               "mean_batch": 4.0, "offline_per_s": 1000.0},
              {"concurrency": 32, "requests": 2000, "share": 0.85, "p50_ms": 10.0, "p99_ms": 31.0, "requests_per_s": 850.0,
               "mean_batch": 12.5, "offline_per_s": 1000.0}]}}}


def test_each_goal_takes_its_value_from_the_deployed_configuration():
    rows = {r["key"]: r for r in speed_goals.goal_rows(RESULT)}
    assert rows["e2e_fp32"]["value"] == pytest.approx(10.0) and rows["e2e_fp32"]["met"] is True   # 20 / 2 >= 9
    assert rows["e2e_int8"]["value"] == pytest.approx(40.0) and rows["e2e_int8"]["met"] is True   # >= 30 (CoNLL)
    assert rows["outside_engine_ms"]["value"] == 0.08 and rows["outside_engine_ms"]["met"] is True  # <= 0.1
    # B' runs on ONNX Runtime (its backend_used): its floor and exact-length penalty, not Paddle's
    assert rows["engine_16_ms"]["value"] == 0.25 and rows["engine_16_ms"]["met"] is True
    assert rows["stream_penalty_student"]["value"] == 0.02 and rows["stream_penalty_student"]["met"] is True
    # the teacher runs on Paddle, which pads to buckets: the bucketed penalty, 15% > 10%
    assert rows["stream_penalty_teacher"]["value"] == 0.15 and rows["stream_penalty_teacher"]["met"] is False
    assert rows["serve_share"]["value"] == 0.85 and rows["serve_share"]["met"] is True
    assert rows["serve_tail"]["value"] == pytest.approx(3.1) and rows["serve_tail"]["met"] is False


def test_a_part_not_measured_is_said_so_not_scored():
    partial = {"tasks": {"imdb": {"per_request": {"teacher fp32": _model(20.0, 18.0, backend="paddle"),
                                                  "student fp32": _model(4.0, 3.0)}}}}
    rows = {r["key"]: r for r in speed_goals.goal_rows(partial)}
    assert rows["e2e_fp32"]["met"] is False and rows["e2e_fp32"]["value"] == pytest.approx(5.0)
    assert [k for k, r in rows.items() if r["met"] is None] == [
        "e2e_int8", "engine_16_ms", "stream_penalty_student", "stream_penalty_teacher", "serve_share", "serve_tail"]
    table = "\n".join(speed_goals.goals_table(partial))
    assert "| end-to-end speed-up vs the teacher's end to end, B' INT8 | imdb | ≥ 25.0x | not measured | — |" in table


def test_the_section_leads_with_the_goals_then_end_to_end_and_model_only_speed_ups():
    lines = speed_goals.render_section(dict(RESULT, load_average_1min={"start": 7.5, "end": 8.25}))
    assert lines[0] == "## Speed, end to end"
    assert "1-min load average 7.5 at the start and 8.25 at the end" in lines[2]
    assert "| end-to-end speed-up vs the teacher's end to end, B' FP32 | conll | ≥ 9.0x | 10.0x | met |" in lines
    assert ("| HTTP server at concurrency 32, 2 worker processes: p99 / p50 | conll | ≤ 3.0x | 3.1x | missed |") in lines
    # teacher 20 ms / 2 ms end to end; 18 ms / 1.5 ms engine alone
    # then the same texts cold (word memos emptied before each request): 21 ms / 3 ms
    assert ("| conll | student fp32 | onnx | 2.00 | 4.00 | 0.080 | 1.50 | 10.0x | 12.0x | 1.00 | 10.0x "
            "| 3.00 | 0.600 | 7.0x |") in lines
    assert lines.count("| conll | student int8 | onnx | 0.50 | 1.00 | 0.050 | 0.30 | 40.0x | 60.0x | 0.25 | 40.0x "
                       "| — | — | — |") == 1
    # the server rows of the measured layout, after the per-request table
    assert "| conll | 2 processes x 1 worker thread | 32 | 850 | 10.00 | 31.00 | 12.5 | 1000 | 85 |" in lines


def test_readme_speed_up_column_takes_the_end_to_end_figure_of_the_same_shape_and_precision():
    def row(model, variant, layers, hidden, speedup):
        return {"task": "conll", "dataset": "CoNLL-2003 NER", "metric_name": "f1", "model": model,
                "variant": variant, "layers": layers, "hidden": hidden, "metric": 0.8, "metric_std": None,
                "seeds": [1], "dev_metric": 0.8, "pct_of_teacher": 95.0, "speedup_vs_teacher": speedup,
                "latency_seq_len": 128}
    born = "student Bp 2L-128H (pruned)"
    rows = [row("teacher MiniLM-L6-H384", "teacher", 6, 384, 1.0), row(born, "kd_recipe", 2, 128, 10.4),
            row(born + " (kd_recipe seed 1, ONNX Runtime INT8)", "int8", 2, 128, 39.8),
            row("student Ap3 3L-384H (pruned)", "task_kd", 3, 384, 5.3)]
    e2e = speed_goals.end_to_end_speedups(RESULT)
    assert e2e == {("conll", (2, 128), "student"): 10.0, ("conll", (2, 128), "int8"): 40.0,
                   ("conll", (3, 384), "student"): 5.0}
    table = readme_table(rows, ["conll"], "CMD", e2e).splitlines()
    assert [line.rsplit("|", 2)[1].strip() for line in table[2:6]] == [
        "1.0×", "10.0× end to end", "40.0× end to end", "5.0× end to end"]
    assert "\"end to end\" = per request on real test texts" in table[-1]
    plain = readme_table(rows, ["conll"], "CMD").splitlines()
    assert [line.rsplit("|", 2)[1].strip() for line in plain[2:6]] == ["1.0×", "10.4×", "39.8×", "5.3×"]
    assert "end to end" not in plain[-1]


def test_per_request_times_outside_the_engine_for_each_request(cls_export):
    from benchmarks.speed import per_request

    texts = ["a fine film .", "dull .", "the film was not good at all , far too long .", "good"] * 2
    targets = [{"key": k, "name": k, "export_dir": cls_export, "backend": "paddle", "precision": "fp32"}
               for k in ("teacher fp32", "student fp32")]
    out = per_request(targets, texts, rounds=2, warmup=1)
    for r in out.values():
        assert r["requests"] == len(texts) and r["backend_used"] == "paddle"
        assert 0 < r["outside_engine_p50_ms"] < r["p50_ms"] and r["cpu_p50_ms"] > 0
        assert r["stages_ms"]["engine"] > 0 and 0 < r["engine_mean_ms"] <= r["mean_ms"]


def test_steady_state_rows_time_each_text_once_after_the_memo_is_filled(cls_export):
    from benchmarks.speed import per_request

    texts = ["a fine film .", "dull .", "far too long ."]
    targets = [{"key": "student fp32", "name": "s", "export_dir": cls_export, "backend": "paddle",
                "precision": "fp32"}]
    out = per_request(targets, texts, rounds=1, warmup=3, served_before=["an earlier request", "and another"])
    r = out["student fp32"]
    assert r["memo"] == "after 2 other texts" and r["requests"] == len(texts)  # no warm-up text read twice
    assert per_request(targets, texts, rounds=1, warmup=1)["student fp32"]["memo"] == "cold"


def test_review_runner_keeps_or_empties_the_word_memo(cls_export):
    from ernie_tiny_distill.deploy.latency_review import review_runner
    from ernie_tiny_distill.deploy.predictor import Predictor

    predictor = Predictor(cls_export)
    memo = predictor.encoder.task.wordpieces._word_ids
    warm = review_runner(predictor, cold=False)
    warm("alpha beta")
    warm("gamma")
    assert {"alpha", "beta", "gamma"} <= set(memo)
    review_runner(predictor)("gamma")
    assert set(memo) == {"gamma"}


def test_direct_iob2_decoder_gives_seqevals_spans_for_every_short_sequence():
    import itertools

    from ernie_tiny_distill.tasks.decoding import _seqeval_spans, entity_spans

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B", "I"]
    for n in range(6):
        for tags in itertools.product(labels, repeat=n):
            assert entity_spans(tags) == _seqeval_spans(list(tags)), tags
    assert entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"]) == [("PER", 0, 2), ("LOC", 4, 5)]
    with pytest.raises(ValueError):  # not IOB2: seqeval's own error
        entity_spans(["S-PER"])


def _numpy_viterbi(log_probs, labels):
    """The textbook form: a [C_prev, C] step per word with -inf for transitions IOB2 forbids."""
    import numpy as np

    from ernie_tiny_distill.tasks.decoding import allowed_transitions

    start, trans = allowed_transitions(labels)
    penalty = np.where(trans, 0.0, -np.inf)
    score = np.where(start, log_probs[0], -np.inf)
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for i in range(1, log_probs.shape[0]):
        total = score[:, None] + penalty
        back[i] = total.argmax(0)
        score = total.max(0) + log_probs[i]
    path = [int(score.argmax())]
    for i in range(log_probs.shape[0] - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def test_viterbi_matches_the_numpy_step_per_word_form_ties_included():
    import numpy as np

    from ernie_tiny_distill.tasks.decoding import log_softmax, viterbi

    conll = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    orphan = ["O", "I-PER", "B-LOC", "I-LOC"]  # I-PER without B-PER: never reachable
    rng = np.random.default_rng(0)
    for labels in (conll, orphan):
        for n in range(1, 30):
            logits = rng.normal(size=(n, len(labels))) if n % 2 else rng.integers(0, 2, size=(n, len(labels)))
            logp = log_softmax(np.asarray(logits, dtype="float64"))
            assert viterbi(logp, labels) == _numpy_viterbi(logp, labels)
    # a trained tagger's case: each word's best tag unique and the sequence allowed (answered without the search)
    for n in range(1, 30):
        tags = rng.choice([0, 1, 3, 5, 7], size=n)  # O and B-X tags: any order is allowed
        tags[1:][tags[:-1] == 1] = rng.choice([2, 1])  # I-PER after B-PER
        logits = rng.normal(size=(n, 9))
        logits[np.arange(n), tags] += 10
        logp = log_softmax(logits)
        assert viterbi(logp, conll) == _numpy_viterbi(logp, conll) == tags.tolist()
    assert viterbi(np.zeros((0, 9)), conll) == []


def test_the_committed_results_measure_every_goal_and_render():
    results = speed_goals.load_results()
    assert results is not None and sorted(results["tasks"]) == ["conll", "imdb"]
    rows = speed_goals.goal_rows(results)
    assert len(rows) == 2 * len(speed_goals.GOALS) and all(r["met"] is not None for r in rows)
    assert results["goals"] == rows  # the table written with the run is the one the report recomputes
    assert speed_goals.render_section(results)[0] == "## Speed, end to end"


def test_timed_engine_counts_the_engine_seconds_and_changes_no_answer(cls_export):
    from benchmarks.speed import TimedEngine
    from ernie_tiny_distill.deploy.predictor import Predictor

    predictor = Predictor(cls_export)
    plain = predictor.predict(["a fine film .", "dull ."])
    predictor.engine = engine = TimedEngine(predictor.engine)
    assert predictor.predict(["a fine film .", "dull ."]) == plain and engine.seconds > 0
    assert engine.pads_to_buckets == engine.engine.pads_to_buckets  # everything else is the engine's
