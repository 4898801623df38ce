"""Run the selected jobs: one `run_logged()` for every subprocess, a lock per job, training and sweep jobs.

A job writes <runs_dir>/results/<job>.json when it finishes; a re-run skips finished jobs, and a training stage
counts as finished by the same rule as `stages.run_stage(skip_if_done=True)` (`stages.finished_summary`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from benchmarks.jobs import REPO, TRAIN_SCRIPT, Job, Matrix, Stage
from benchmarks.util import read_yaml, sha, tail, write_json
from ernie_tiny_distill.config import config_from_dict
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)


def run_logged(m: Matrix, name: str, argv: Sequence[str], command: str, env: Optional[Dict[str, str]] = None) -> str:
    """Run `python argv...` with output appended to the job's log; raise with the log's tail on a non-zero exit.

    `command` is the line a person would type (recorded in results and printed); returns the log file path.
    """
    log_file = m.log_file(name)
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    logger.info("  %s: %s  (log: %s)", name, command, log_file)
    m.ran.append(name)
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n")
        log.flush()
        rc = subprocess.call([sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    if rc != 0:
        raise RuntimeError(f"{command} exited with status {rc}; last lines of {log_file}:\n{tail(log_file)}")
    return log_file


def finished(cfg: Dict):
    """summary.json of a finished run of this (complete) config, by the rule stages.run_stage uses."""
    from ernie_tiny_distill.train.stages import finished_summary

    return finished_summary(config_from_dict(cfg))


def record(m: Matrix, job: Job, **data) -> Dict:
    res = {"name": job.name, "kind": job.kind, "task": job.task, "model": job.model, "variant": job.variant,
           "seed": job.seed, "status": "done", "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    write_json(m.result_path(job.name), res)
    return res


def summary_digest(s: Dict) -> Dict:
    from benchmarks.util import headline

    keep = ("stage", "metric_name", "train_examples", "transfer_examples", "params", "nonembedding_params",
            "layers", "hidden", "best_dir", "best_step", "seconds", "train_seconds", "output_dir", "decoding",
            "wide_params", "best_epoch", "history", "wide_fit", "wide_scale", "table_dev", "table_test",
            "wide_level", "wide_weighting", "wide_C")
    out = {k: s.get(k) for k in keep if k in s}
    for split in ("dev", "test", "teacher_dev", "deep_dev", "deep_test"):
        if split in s:
            out[split] = headline(s[split])
    if s.get("ensemble"):  # stage 'wide': the ensemble it built, and each member, on dev and test
        e = s["ensemble"]
        out["ensemble"] = {"dev": headline(e.get("dev")), "test": headline(e.get("test")),
                           "teachers": e.get("teachers"), "temperature": e.get("temperature")}
    return out


def _same_config(old: Optional[Dict], new: Dict) -> bool:
    from ernie_tiny_distill.train.stages import same_config

    return same_config(old, new)


# ---------------------------------------------------------------- training, teacher, sweep


def run_train(m: Matrix, job: Job) -> None:
    stages = m.stages(job)
    fingerprint = sha([s.cfg for s in stages])
    previous = m.result(job.name)
    if previous and previous.get("status") == "done" and previous.get("fingerprint") == fingerprint \
            and all(finished(s.cfg) for s in stages):
        logger.info("%s: finished earlier; skipping", job.name)
        return
    summaries = [run_stage(m, stage) for stage in stages]
    last = summaries[-1]
    record(m, job, fingerprint=fingerprint, commands=[s.command for s in stages],
           configs=[s.yaml_path for s in stages], output_dirs=[s.cfg["output_dir"] for s in stages],
           seconds=round(sum(s.get("seconds") or 0 for s in summaries), 1),
           summary=summary_digest(last), stage_summaries=[summary_digest(s) for s in summaries[:-1]])


def run_stage(m: Matrix, stage: Stage) -> Dict:
    done = finished(stage.cfg)
    if done is not None:
        logger.info("  %s: finished earlier with this config; skipping", stage.name)
        return done
    out = stage.cfg["output_dir"]
    old_cfg = read_yaml(os.path.join(out, "config.yaml"))
    if old_cfg is not None and not _same_config(old_cfg, stage.cfg):
        stale = f"{out}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
        logger.warning("  %s: %s holds a run of a different config; moved to %s", stage.name, out, stale)
        os.replace(out, stale)
    log_file = run_logged(m, stage.name, [str(REPO / TRAIN_SCRIPT), "--config", stage.yaml_path], stage.command,
                          env={"OMP_NUM_THREADS": str(stage.cfg["train"]["num_threads"])})
    summary = finished(stage.cfg)
    if summary is None:
        raise RuntimeError(f"{stage.command} exited 0 but wrote no summary; last lines of {log_file}:\n"
                           + tail(log_file))
    return summary


def run_teacher(m: Matrix, job: Job) -> None:
    cfg = m.teacher_cfg(job.task)
    spec = m.p.tasks[job.task]
    full = cfg.to_dict()
    command = m.teacher_command(job.task)
    base = dict(fingerprint=sha(full), commands=[command], configs=[spec.teacher_config],
                output_dirs=[cfg.output_dir])
    summary = finished(full)
    if summary is None:
        old_cfg = read_yaml(os.path.join(cfg.output_dir, "config.yaml"))
        if old_cfg is not None and not _same_config(old_cfg, full):
            raise UserError(f"{cfg.output_dir} holds a teacher run of a different config; "
                            "not touching it (move it away or fix the teacher YAML)")
        others = processes_running(spec.teacher_config, cfg.output_dir)
        if others:
            logger.info("%s: being trained by another process (pid %s); waiting for its training to finish",
                        job.name, ", ".join(map(str, others)))
            while not training_finished(cfg.output_dir, cfg.train.epochs):
                if finished(full) is not None or not processes_running(spec.teacher_config, cfg.output_dir):
                    break
                time.sleep(60)
            summary = finished(full)
            if summary is None:
                if not training_finished(cfg.output_dir, cfg.train.epochs):
                    raise RuntimeError(f"the teacher run in {cfg.output_dir} stopped before finishing")
                # its final dev/test evaluation is still running: students only need best/
                record(m, job, status="ready", **base)
                return
        else:
            run_logged(m, job.name, [str(REPO / TRAIN_SCRIPT), "--config", spec.teacher_config,
                                     *spec.teacher_overrides], command,
                       env={"OMP_NUM_THREADS": str(cfg.train.num_threads)})
            summary = finished(full)
            if summary is None:
                raise RuntimeError(f"{command} exited 0 but wrote no summary in {cfg.output_dir}")
    record(m, job, summary=summary_digest(summary), seconds=summary.get("seconds"), **base)


def sweep_params(name: str) -> Dict[str, float]:
    out = {}
    for part in name.split("/")[-1].split("_")[1:]:
        for key, prefix in (("temperature", "T"), ("ce_weight", "ce"), ("learning_rate", "lr")):
            if part.startswith(prefix):
                out[key] = float(part[len(prefix):])
    return out


def run_sweep_select(m: Matrix, job: Job) -> None:
    grid = []
    for dep in job.deps:
        res = m.result(dep)
        s = res["summary"]
        grid.append({"name": dep, "variant": res["variant"], "dev": s["dev"][s["metric_name"]],
                     "metric_name": s["metric_name"], **sweep_params(dep)})
    kd = [g for g in grid if g["variant"] == "sweep_kd"]
    nokd = [g for g in grid if g["variant"] == "sweep_nokd"]
    chosen = dict(m.p.fixed)
    if kd:
        best = max(kd, key=lambda g: g["dev"])   # first of equals (grid order) wins a tie
        chosen.update(temperature=best["temperature"], ce_weight=best["ce_weight"],
                      learning_rate=best["learning_rate"])
    if nokd:
        chosen["nokd_learning_rate"] = max(nokd, key=lambda g: g["dev"])["learning_rate"]
    record(m, job, fingerprint=sha(grid), grid=grid, chosen=chosen)


# ---------------------------------------------------------------- other processes


def _processes() -> List[tuple]:
    """(pid, argv, cwd, stopped) of the other processes this user can see; stopped = SIGSTOPped (no CPU)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = p.info
        if info["pid"] == os.getpid() or not info.get("cmdline") or not info.get("cwd"):
            continue
        out.append((info["pid"], info["cmdline"], info["cwd"], info.get("status") == psutil.STATUS_STOPPED))
    return out


def processes_running(config_path: str, output_dir: str) -> List[int]:
    """Other processes running tools/train.py on this config file or into this output_dir."""
    targets = {os.path.realpath(config_path), os.path.realpath(output_dir)}
    found = []
    for pid, argv, cwd, _ in _processes():
        if not any(a.endswith("train.py") for a in argv):
            continue
        paths = [a.split("=", 1)[1] if a.startswith("output_dir=") else a for a in argv]
        if any(os.path.realpath(os.path.join(cwd, a)) in targets for a in paths):
            found.append(pid)
    return found


def training_finished(output_dir: str, epochs: float) -> bool:
    """The last training step's checkpoint exists (so best/ is final), even if the final evaluation runs."""
    try:
        with open(os.path.join(output_dir, "train_log.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return False
    ckpt_dir = os.path.join(output_dir, "checkpoints")
    steps = []
    if os.path.isdir(ckpt_dir):   # complete checkpoints only: they get their step-N name by the final rename
        steps = [int(n.split("-")[1]) for n in os.listdir(ckpt_dir) if n.startswith("step-") and
                 n.split("-")[1].isdigit() and os.path.isfile(os.path.join(ckpt_dir, n, "trainer_state.json"))]
    if not records or not steps or not records[-1].get("epoch"):
        return False
    per_epoch = records[-1]["step"] / records[-1]["epoch"]
    return max(steps) >= max(1, math.ceil(epochs * round(per_epoch)))


def busy(sample_s: float = 2.0) -> Dict:
    """The CPU use of the whole machine over `sample_s` seconds, the load average and the training/test processes
    running; stopped ones (SIGSTOP, e.g. paused for a latency run) use no CPU, so they are listed apart as paused and
    do not make the machine busy."""
    import psutil

    procs, paused = [], []
    for _, argv, _, stopped in _processes():
        if any(a.endswith(("train.py", "pytest", "baselines")) or a == "pytest" for a in argv):
            (paused if stopped else procs).append(" ".join(argv)[:160])
    cpu = psutil.cpu_percent(interval=sample_s) if sample_s > 0 else None
    return {"cpu_busy_pct": cpu, "loadavg_1min": round(os.getloadavg()[0], 2), "training_processes": procs,
            "paused_processes": paused}


def is_quiet(state: Dict, max_cpu_pct: float = 25.0) -> bool:
    """No training process and the CPU mostly idle *now*. The 1-minute load average is recorded but not used: it
    decays for about a minute after runs end, so it called a quiet machine contended. On 2 cores one busy thread is
    50%, hence 25% by default."""
    return not state["training_processes"] and state["cpu_busy_pct"] is not None \
        and state["cpu_busy_pct"] < max_cpu_pct


def wait_quiet(timeout: float, poll: float = 60.0, max_cpu_pct: float = 25.0) -> Dict:
    """Latency is measured last, with no training job running and an idle CPU (or after `timeout`)."""
    started = time.time()
    while True:
        state = busy()
        quiet = is_quiet(state, max_cpu_pct)
        if quiet or time.time() - started > timeout:
            if not quiet:
                logger.warning("no quiet window after %.0f s; measuring anyway (recorded as contended): %s",
                               time.time() - started, state)
            return {"quiet": quiet, "busy": state, "waited_s": round(time.time() - started)}
        logger.info("latency: waiting for a quiet machine (CPU %.0f%% busy, %d training processes)",
                    state["cpu_busy_pct"], len(state["training_processes"]))
        time.sleep(poll)
