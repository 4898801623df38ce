"""Jobs after training: TF-IDF reference rows, exports, INT8 exports and the interleaved latency run."""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, List, Optional

from benchmarks.jobs import REPO, Job, Matrix
from benchmarks.runner import busy, record, run_logged, wait_quiet
from benchmarks.util import headline, read_json, sha
from ernie_tiny_distill.config import load_config

logger = logging.getLogger(__name__)

BASELINES_MODULE = "ernie_tiny_distill.distill.tfidf"   # `python -m ernie_tiny_distill.distill.tfidf`, as documented


def tfidf_args(m: Matrix, job: Job) -> List[str]:
    spec = m.p.tasks[job.task]
    grid = ",".join(f"{c:g}" for c in m.p.tfidf_grid)
    return ["--config", spec.teacher_config, *spec.teacher_overrides, "--train", job.extra["train"],
            "--c-grid", grid, "--out", m.out(job.task, "tfidf_lr", job.extra["train"] + ".json")]


def tfidf_command(m: Matrix, job: Job) -> str:
    return " ".join([f"python -m {BASELINES_MODULE}", *tfidf_args(m, job)])


def run_tfidf(m: Matrix, job: Job) -> None:
    out = m.out(job.task, "tfidf_lr", job.extra["train"] + ".json")
    command = tfidf_command(m, job)
    fingerprint = sha([m.teacher_cfg(job.task).to_dict()["data"], job.extra, list(m.p.tfidf_grid)])
    previous = m.result(job.name)
    if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(out):
        logger.info("%s: finished earlier; skipping", job.name)
        return
    run_logged(m, job.name, ["-m", BASELINES_MODULE, *tfidf_args(m, job)], command)
    result = read_json(out)
    if result is None:
        raise RuntimeError(f"{command} exited 0 but wrote no {out}")
    record(m, job, fingerprint=fingerprint, commands=[command], output=out,
           summary={"metric_name": "accuracy", "test": result["test"],
                    "dev": {"accuracy": result["dev_accuracy"]}, "C": result["C"],
                    "train_examples": result["train_examples"], "seconds": result["seconds"]})


ENSEMBLE_MODULE = "ernie_tiny_distill.distill.ensemble"   # `python -m ernie_tiny_distill.distill.ensemble`


def teachers_args(m: Matrix, job: Job) -> List[str]:
    """Score the whole-document student's teachers (its distill.teachers, or one member) on dev and test."""
    stage = m.stages(next(j for j in m.jobs() if j.name == job.extra["stage"]))[-1]
    member = [] if job.extra.get("member") is None else ["--member", str(job.extra["member"])]
    return ["--config", stage.yaml_path, *member, "--out", job.extra["out"]]


def teachers_command(m: Matrix, job: Job) -> str:
    return " ".join([f"python -m {ENSEMBLE_MODULE}", *teachers_args(m, job)])


def teachers_fingerprint(cfg: Dict, member: Optional[int], teacher_weights: str) -> str:
    """What the teacher/ensemble scores depend on: data, how documents are read, the teachers. Not the student the
    config also describes, nor its wide part (a new student start, and later a new model.wide key, re-scored the
    24,999 test reviews through the teacher's windows: ~1 h here)."""
    reads = {k: v for k, v in cfg["model"].items() if k not in ("student", "wide")}
    return sha([cfg["data"], reads, cfg["distill"], member, teacher_weights])


def run_teachers(m: Matrix, job: Job) -> None:
    """The teacher over whole documents (one member) or the ensemble, scored without training."""
    args = teachers_args(m, job)
    out, command = args[-1], teachers_command(m, job)
    from ernie_tiny_distill.config import load_config

    cfg = load_config(args[1]).to_dict()
    fingerprint = teachers_fingerprint(cfg, job.extra.get("member"),
                                       _weights_fingerprint(os.path.join(m.teacher_cfg(job.task).output_dir, "best")))
    previous = m.result(job.name)
    if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(out):
        logger.info("%s: scored earlier; skipping", job.name)
        return
    run_logged(m, job.name, ["-m", ENSEMBLE_MODULE, *args], command, env={"OMP_NUM_THREADS": "1"})
    result = read_json(out)
    if result is None:
        raise RuntimeError(f"{command} exited 0 but wrote no {out}")
    record(m, job, fingerprint=fingerprint, commands=[command], output=out,
           summary={k: result.get(k) for k in ("metric_name", "dev", "test", "teachers", "reads", "seconds")})


def model_dir(m: Matrix, job: Job) -> str:
    if job.model == "teacher":
        return os.path.join(m.teacher_cfg(job.task).output_dir, "best")
    return m.result(job.extra["row"])["summary"]["best_dir"]


def export_dir(m: Matrix, job: Job) -> str:
    if job.kind == "int8":
        return m.out(job.task, "export", f"{job.model}-int8")
    return m.out(job.task, "export", job.name.split("/")[-1])


def export_args(m: Matrix, job: Job, source: str, create: bool = True) -> List[str]:
    args = ["--model", source, "--out", export_dir(m, job)]
    if job.kind == "int8":
        args += ["--int8", "--calibration-file", calibration_file(m, job.task, create), "--int8-method",
                 m.p.int8_method]
    return args + ["--threads", "1"]


def _export(m: Matrix, job: Job, source: str) -> str:
    args = export_args(m, job, source)
    command = " ".join(["python tools/export.py", *args])
    run_logged(m, job.name, [str(REPO / "tools" / "export.py"), *args], command, env={"OMP_NUM_THREADS": "1"})
    return command


def _weights_fingerprint(source: str, *extra) -> str:
    return sha([os.path.abspath(source), os.stat(os.path.join(source, "model.safetensors")).st_mtime_ns, *extra])


def run_export(m: Matrix, job: Job) -> None:
    source, out = model_dir(m, job), export_dir(m, job)
    fingerprint = _weights_fingerprint(source)
    previous = m.result(job.name)
    if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(os.path.join(out, "export.json")):
        logger.info("%s: exported earlier; skipping", job.name)
        return
    command = _export(m, job, source)
    meta = read_json(os.path.join(out, "export.json")) or {}
    files = meta.get("files") or {}
    from ernie_tiny_distill.wide.document import DOCUMENT_WEIGHTS

    # the model's files: the graph and weights, and a document-level wide part served beside them
    size = sum(v for k, v in files.items() if k.startswith("inference.") or k == DOCUMENT_WEIGHTS)
    record(m, job, fingerprint=fingerprint, model_dir=source, export_dir=out, size_mb=size / 2**20,
           check=meta.get("check"), commands=[command])


def calibration_file(m: Matrix, t: str, create: bool = True) -> str:
    """Training texts for INT8 (one per line; CoNLL-format data: the training file itself, which export reads)."""
    cfg = m.teacher_cfg(t)
    if cfg.data.format in ("conll", "msra") and cfg.data.path:
        for name in ("train.txt", "train.tsv"):
            if os.path.isfile(os.path.join(cfg.data.path, name)):
                return os.path.join(cfg.data.path, name)
    path = m.out(t, "calibration.txt")
    if create and not os.path.isfile(path):
        from ernie_tiny_distill.data import load as data_lib

        train = data_lib.load_splits(cfg.data, cfg.task).train[:300]
        lines = [" ".join((e.text if hasattr(e, "text") else " ".join(e.tokens)).split()) for e in train]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return path


def run_int8(m: Matrix, job: Job) -> None:
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.deploy.predictor import Predictor, evaluate_export

    source, out = model_dir(m, job), export_dir(m, job)
    fingerprint = _weights_fingerprint(source, m.p.int8_method)
    previous = m.result(job.name)
    if previous and previous.get("fingerprint") == fingerprint and os.path.isfile(os.path.join(out, "model.int8.onnx")):
        logger.info("%s: quantized earlier; skipping", job.name)
        return
    command = _export(m, job, source)
    meta = read_json(os.path.join(out, "export.json")) or {}
    cfg = m.teacher_cfg(job.task)
    splits = data_lib.load_splits(cfg.data, cfg.task)
    predictor = Predictor(out, backend="onnx", precision="int8", num_threads=1)
    started = time.time()
    test = evaluate_export(predictor, splits.test)
    src = m.result(job.extra["row"])["summary"]
    from ernie_tiny_distill.wide.document import DOCUMENT_WEIGHTS

    record(m, job, fingerprint=fingerprint, export_dir=out, int8=meta.get("int8"),
           size_mb=sum(os.path.getsize(os.path.join(out, name)) for name in ("model.int8.onnx", DOCUMENT_WEIGHTS)
                       if os.path.isfile(os.path.join(out, name))) / 2**20,
           summary={**src, "test": headline(test), "source_test": src["test"]},
           eval_seconds=round(time.time() - started, 1), commands=[command])


def latency_targets(m: Matrix, job: Job) -> List[Dict]:
    """The finished exports of a task as interleaved-latency targets (key, export_dir, backend, precision, seq)."""
    lat = m.p.latency
    targets = []
    for dep in job.deps:
        res = m.result(dep)
        if not res or res.get("status") != "done":
            continue
        kind, key = dep.split("/")[1], dep.split("/")[-1]
        if kind == "export":
            seq = int(key.split("-len")[1]) if "-len" in key else lat["seq_len"]
            targets.append({"key": key, "export_dir": res["export_dir"], "backend": "paddle", "precision": "fp32",
                            "seq_len": seq})
        elif kind == "int8":
            targets.append({"key": f"{key}-int8", "export_dir": res["export_dir"], "backend": "onnx",
                            "precision": "int8", "seq_len": lat["seq_len"]})
    return targets


KEEP = ("backend", "precision", "threads", "seq_len", "batch_size", "p50_ms", "p95_ms", "throughput_seq_per_s",
        "gflop_per_seq", "achieved_gflops", "iterations", "warmup", "rounds", "samples")


def run_latency(m: Matrix, job: Job) -> None:
    """Teacher and every student of the task timed in one interleaved run (round-robin over the models)."""
    from ernie_tiny_distill.deploy import latency

    lat = m.p.latency
    wait = wait_quiet(m.p.quiet_timeout)
    targets = latency_targets(m, job)
    logger.info("  latency, interleaved over %s (%d rounds, %d thread)", ", ".join(t["key"] for t in targets),
                lat.get("rounds", 5), lat["threads"])
    results = latency.measure_interleaved(
        targets, num_threads=lat["threads"], batch_size=lat["batch_size"], iterations=lat["iterations"],
        warmup=lat["warmup"], rounds=lat.get("rounds", 5), batch_iterations=max(5, lat["iterations"] // 10))
    measured = {key: {k: r.get(k) for k in KEEP} for key, r in results.items()}
    env = next(iter(results.values()))["environment"] if results else None
    tfidf = tfidf_latency(m, job.task) if m.p.tasks[job.task].tfidf else {}
    per_review = per_review_latency(m, job, targets) if lat.get("per_review") else {}
    record(m, job, measured=measured, tfidf=tfidf, per_review=per_review, environment=env, interleaved=True,
           quiet={"waited_s": wait["waited_s"], "quiet": wait["quiet"], "before": wait["busy"], "after": busy()},
           commands=[f"python tools/reproduce.py --task {job.task} --only {job.name}"])


def per_review_latency(m: Matrix, job: Job, targets: List[Dict]) -> Dict:
    """p50/p95 per real test text (profile latency.per_review: {examples, seed}): the whole request path of every
    finished export, batch 1, interleaved; with tasks.<t>.whole_document also the teacher reading windows."""
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.deploy import latency_review

    opts = m.p.latency["per_review"]
    cfg = m.teacher_cfg(job.task)
    test = data_lib.load_splits(cfg.data, cfg.task).test
    texts = latency_review.sample_texts([e.text if hasattr(e, "text") else " ".join(e.tokens) for e in test],
                                        int(opts["examples"]), int(opts.get("seed", 0)))
    targets = [{k: v for k, v in t.items() if k != "seq_len"} for t in targets]
    wd = m.p.tasks[job.task].whole_document
    teacher = next((t for t in targets if t["key"] == "teacher"), None)
    if wd is not None and teacher is not None:
        targets.append(dict(teacher, key="teacher-windows", long_document=dict(wd.windows)))
    logger.info("  latency per review: %d test texts (seed %d), interleaved over %s", len(texts),
                int(opts.get("seed", 0)), ", ".join(t["key"] for t in targets))
    results = latency_review.measure_per_review(targets, texts, num_threads=m.p.latency["threads"],
                                                rounds=int(opts.get("rounds", m.p.latency.get("rounds", 5))),
                                                warmup=int(opts.get("warmup", 3)))
    return {"examples": len(texts), "seed": int(opts.get("seed", 0)),
            "measured": {key: {k: v for k, v in r.items() if k != "model"} for key, r in results.items()}}


def tfidf_latency(m: Matrix, t: str) -> Dict:
    from ernie_tiny_distill.data import load as data_lib
    from ernie_tiny_distill.distill import tfidf as baselines

    out = {}
    for sub in ("subset", "all"):
        res = m.result(f"{t}/tfidf_lr/{sub}")
        if not res:
            continue
        cfg = m.teacher_cfg(t) if sub == "subset" else load_config(
            m.p.tasks[t].teacher_config, m.p.tasks[t].teacher_overrides + ["data.max_train_examples=null"])
        splits = data_lib.load_splits(cfg.data, cfg.task)
        texts = [e.text for e in splits.train] + ([e.text for e in splits.dev] if sub == "all" else [])
        labels = [e.label for e in splits.train] + ([e.label for e in splits.dev] if sub == "all" else [])
        model = baselines.make_model(res["summary"]["C"], len(set(labels))).fit(texts, labels)
        out[sub] = baselines.time_model(model, [e.text for e in splits.test[:500]],
                                        batch_size=m.p.latency["batch_size"])
    return out
