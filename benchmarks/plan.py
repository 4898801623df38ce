"""`tools/reproduce.py --plan`: every selected job with the commands it runs and a time estimate from the
training times recorded in the committed benchmarks/results.json (train_seconds per seed)."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from benchmarks.jobs import Job, Matrix, NotReady
from benchmarks.util import read_json


def recorded_seconds(m: Matrix) -> Dict[Tuple[str, str, str], float]:
    """(task, student, variant) -> recorded training seconds per seed, from the results file of the profile."""
    rows = read_json(os.path.join(m.p.out_dir, "benchmarks", m.p.results_name)) or []
    out = {}
    for r in rows if isinstance(rows, list) else []:
        model = str(r.get("model") or "")
        if not (model.startswith("student ") and r.get("train_seconds") and r.get("seeds")):
            continue
        out[(r["task"], model.split()[1].rstrip(":"), r["variant"])] = r["train_seconds"] / len(r["seeds"])
    return out


def estimate(job: Job, seconds: Dict[Tuple[str, str, str], float]) -> Optional[Tuple[float, str]]:
    """(seconds, where from) for a training job when a comparable row was recorded, else None."""
    if job.kind != "train":
        return None
    # a sweep point runs the task_kd / no_kd recipe of the same student (without the test evaluation)
    variant = {"sweep_kd": "task_kd", "sweep_nokd": "no_kd"}.get(job.variant, job.variant)
    s = seconds.get((job.task, job.model, variant))
    if s is None:
        return None
    how = "recorded" if variant == job.variant else f"as {variant}, recorded"
    return s, f"{how} in benchmarks/results.json"


def commands(m: Matrix, job: Job) -> List[str]:
    from benchmarks import deploy

    if job.kind == "train":
        try:
            return [s.command for s in m.stages(job)]
        except NotReady as e:
            return [f"(after the sweep: {e})"]
    if job.kind == "teacher":
        return [m.teacher_command(job.task)]
    if job.kind == "tfidf":
        return [deploy.tfidf_command(m, job)]
    if job.kind == "teachers":
        try:
            return [deploy.teachers_command(m, job)]
        except NotReady as e:
            return [f"(after the sweep: {e})"]
    if job.kind in ("export", "int8"):
        if job.model == "teacher" or m.result(job.extra["row"]):
            source = deploy.model_dir(m, job)
        else:   # not trained yet: where its best checkpoint will be
            source = os.path.join(m.out(*job.extra["row"].split("/")), "best")
        return ["python tools/export.py " + " ".join(deploy.export_args(m, job, source, create=False))]
    if job.kind == "decoding":
        return [f"(in-process: re-scores the finished runs' best/ under each tag decoding into <run>/decoding.json; "
                f"python tools/reproduce.py --task {job.task} --only {job.name})"]
    if job.kind == "latency":
        lat = m.p.latency
        exports = " ".join(f"--model {m.out(job.task, 'export', d.split('/')[-1])}"
                           for d in job.deps if d.split("/")[1] == "export" and "-len" not in d)
        return [f"(in-process, after the exports; its FP32 rows as a command:) "
                f"python tools/benchmark.py latency --interleave {exports} "
                f"--backends paddle --precisions fp32 --seq-lens {lat['seq_len']} --threads {lat['threads']} "
                f"--iterations {lat['iterations']} --rounds {lat.get('rounds', 5)}"] + (
            [f"(in-process, same run:) latency per real review: {lat['per_review']['examples']} seeded test texts, "
             f"the whole request path of each export (+ the teacher reading windows), batch 1, interleaved"]
            if lat.get("per_review") else [])
    return [f"(in-process: picks the best dev point of {job.task}/{m.sweeper}/sweep)"]


def _minutes(s: float) -> str:
    return f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def render(m: Matrix, jobs: List[Job]) -> str:
    seconds = recorded_seconds(m)
    lines, total, known = [], 0.0, 0
    for job in jobs:
        est = estimate(job, seconds)
        if est:
            total += est[0]
            known += 1
        note = f"   [~{_minutes(est[0])}, {est[1]}]" if est else \
            ("   [no recorded time]" if job.kind in ("train", "teacher", "tfidf") else "")
        done = "   (finished)" if m.is_done(job.name) else ""
        lines.append(job.name + done + note)
        lines += [f"    {c}" for c in commands(m, job)]
    train_jobs = sum(j.kind == "train" for j in jobs)
    lines.append(f"\n{len(jobs)} jobs; estimated training time {_minutes(total)} for {known} of {train_jobs} training "
                 f"jobs with a recorded time (one job at a time, on the machine that recorded it)")
    return "\n".join(lines)
