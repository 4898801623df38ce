"""The setup sections of docs/benchmarks.md: the students, seeds and data of each task, the hyper-parameters
chosen on dev and the environment the runs and the latency measurement saw."""
from __future__ import annotations

import os
import platform
from typing import Dict, List

from benchmarks.jobs import Matrix
from benchmarks.util import read_json


def _interleaved(extra: Dict) -> bool:
    lats = [e["latency"] for e in extra.values() if e.get("latency")]
    return bool(lats) and all(x.get("interleaved") for x in lats)


def _interleave_note(extra: Dict, lat_cfg: Dict) -> str:
    """How teacher and students were timed: interleaved (round-robin) or one after the other, per the results."""
    if _interleaved(extra):
        return (f"Teacher and students of a task are timed interleaved in one run ({lat_cfg.get('rounds', 5)} "
                "round-robin rounds over the models; p50/p95 over all samples of a model), so a drift of the "
                "machine hits all of them alike; ")
    return "Teacher and students of a task are measured in the same run; "


def environment() -> Dict:
    from importlib import metadata

    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    env = {"cpu_model": info.get("model name", platform.processor()), "logical_cpus": os.cpu_count(),
           "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8") if f in flags],
           "python": platform.python_version()}
    for pkg in ("paddlepaddle", "paddlenlp", "onnxruntime", "scikit-learn"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return env


def _configs_table(m: Matrix, t: str) -> List[str]:
    spec = m.p.tasks[t]
    lines = []
    tsum = read_json(os.path.join(m.teacher_cfg(t).output_dir, "summary.json")) or {}
    tcfg = m.teacher_cfg(t)
    d = tcfg.data
    lines.append(f"- Teacher: `{tcfg.model.teacher}` fine-tuned by `{m.teacher_command(t)}` "
                 f"({tcfg.train.epochs:g} epoch(s), lr {tcfg.train.learning_rate:g}, batch {tcfg.train.batch_size}, "
                 f"max_seq_length {tcfg.model.max_seq_length}, truncation {tcfg.model.truncation}).")
    data_bits = [f"format {d.format}, path `{d.path}`"]
    if d.max_train_examples:
        data_bits.append(f"training subset {d.max_train_examples} (seeded, split_seed {d.split_seed})")
    if tsum.get("train_examples"):
        data_bits.append(f"{tsum['train_examples']} labeled training examples")
    if tsum.get("dev"):
        n = tsum["dev"].get("num_examples") or tsum["dev"].get("num_sentences")
        data_bits.append(f"dev {n}")
    if tsum.get("test"):
        n = tsum["test"].get("num_examples") or tsum["test"].get("num_sentences")
        data_bits.append(f"test {n} (full test split)")
    lines.append("- Data: " + "; ".join(data_bits) + ".")
    unl = spec.unlabeled if spec.unlabeled != "train_text" else f"{m.out(t, 'unlabeled.txt')} (training sentences, labels dropped)"
    lines.append(f"- Unlabeled text: `{unl}`" + (f", first {spec.max_unlabeled}" if spec.max_unlabeled else "")
                 + f"; stage 1 on it for {spec.general_epochs:g} epoch(s)"
                 + ("; also the transfer set of task KD (teacher soft labels, KD term only)." if spec.transfer
                    else "; no transfer set in task KD (it would repeat the labeled set)."))
    lines.append(f"- Budget: no_kd {spec.no_kd_epochs:g} epochs over the labeled set; task_kd and stage 2 of "
                 f"two_stage_kd {spec.kd_epochs:g} epoch(s) over labeled" + (" + transfer set" if spec.transfer else "")
                 + (f" (dev evaluated every {spec.kd_eval_every} steps, like no_kd's once per labeled epoch)"
                    if spec.kd_eval_every else "") + ".")
    return lines


def setup_lines(m: Matrix) -> List[str]:
    p = m.p
    L = ["", "## Setup", ""]
    L.append("- Students: " + "; ".join(f"**{k}** = {s.describe()}" for k, s in sorted(p.students.items())) +
             ". `no_kd` and `task_kd` start from `init: config` (random encoder, embeddings = the teacher's "
             "PCA-projected); `two_stage_kd` starts from its own stage-1 run (`init: pretrained`).")
    L.append("- Seeds: " + ", ".join(f"{k}: {v}" for k, v in sorted(p.seeds.items())) +
             " (train.seed: initialisation, batch order, dropout). Mean ± sample std over seeds.")
    L.append(f"- Stage 1: hidden-state MSE (learned projection) × {p.general['hidden_weight']:g} + attention KL × "
             f"{p.general['attention_weight']:g}, uniform layer map, from the *pretrained* MiniLM (no MLM head), "
             f"lr {p.general['learning_rate']:g} for B ({p.lr_factor.get('A', 1):g}× for A); not tuned.")
    L.append(f"- Training: batch {p.train['batch_size']}, AdamW, linear warm-up {p.train['warmup_ratio']:g} + decay, "
             f"weight decay {p.train['weight_decay']:g}, best checkpoint by dev metric, "
             f"{p.train['num_threads']} thread per job.")
    for t in m.tasks:
        L += ["", f"### {p.tasks[t].title} (`{t}`)", ""] + _configs_table(m, t)
    return L


def sweep_lines(m: Matrix, extra: Dict) -> List[str]:
    p = m.p
    L = ["", "## Hyper-parameters chosen on dev", ""]
    for t in m.tasks:
        sw = extra[t]["sweep"]
        if not sw:
            L.append(f"- {t}: sweep not finished.")
            continue
        ch = sw["chosen"]
        L.append(f"- **{t}**: task KD T = {ch['temperature']:g}, λ (ce_weight) = {ch['ce_weight']:g}, "
                 f"lr = {ch['learning_rate']:g} for B and {ch['learning_rate'] * p.lr_factor.get('A', 1):g} for A "
                 f"({p.lr_factor.get('A', 1):g}× B's, not swept); no-KD lr = {ch['nokd_learning_rate']:g} for B, "
                 f"{ch['nokd_learning_rate'] * p.lr_factor.get('A', 1):g} for A. Two-stage rows use the task-KD values.")
        if not sw["grid"]:
            L.append("  (fixed in the profile: no dev sweep)")
            continue
        L += ["", "| sweep point (student B, seed %d) | dev %s |" % (p.seeds["B"][0], sw["grid"][0]["metric_name"]),
              "|---|---|"]
        for g in sw["grid"]:
            mark = " **(chosen)**" if (g["variant"] == "sweep_kd" and g.get("temperature") == ch["temperature"]
                                       and g.get("ce_weight") == ch["ce_weight"]
                                       and g.get("learning_rate") == ch["learning_rate"]) or \
                                      (g["variant"] == "sweep_nokd" and g["learning_rate"] == ch["nokd_learning_rate"]) \
                else ""
            L.append(f"| `{g['name'].split('/')[-1]}` | {100 * g['dev']:.2f}{mark} |")
        L.append("")
        L.append("Sweep runs read no test data (`data.max_test_examples: 0`).")
    return L


def environment_lines(m: Matrix, extra: Dict) -> List[str]:
    p, env = m.p, environment()
    lat_env = next((e["latency"].get("environment") for e in extra.values() if e.get("latency")), None)
    L = ["", "## Environment", ""]
    L.append(f"- CPU: {env.get('cpu_model')} ({env.get('logical_cpus')} logical CPUs; ISA {', '.join(env['isa'])}); "
             f"Python {env['python']}, paddlepaddle {env.get('paddlepaddle')}, paddlenlp {env.get('paddlenlp')}, "
             f"onnxruntime {env.get('onnxruntime')}, scikit-learn {env.get('scikit-learn')}.")
    L.append("- Training ran on a machine shared with other jobs (two training jobs at a time, one thread each), "
             "so training times are not benchmarks; latency was measured separately, last (below).")
    lat_cfg = p.latency
    timer = "measure_interleaved" if _interleaved(extra) else "measure"
    L.append(f"- Latency: exported models (`export.export_model`, static graph) timed with `latency.{timer}`: "
             f"Paddle Inference FP32 with oneDNN, **{lat_cfg['threads']} thread**, batch 1 at seq "
             f"{lat_cfg['seq_len']} (synthetic token ids, tokenization excluded; {lat_cfg['iterations']} timed runs "
             f"after {lat_cfg['warmup']} warm-up) for p50/p95, and sequences/s at batch {lat_cfg['batch_size']}. "
             + _interleave_note(extra, lat_cfg) + "speed-up = teacher p50 / row p50. "
             "Every variant of a student shares its architecture, so they share its latency. INT8 rows run the "
             "quantized ONNX model in ONNX Runtime (Paddle Inference 3.3 has no CPU INT8 path for PIR models, "
             "see export.py). TF-IDF latency is scikit-learn on one raw review (featurization included).")
    for t in m.tasks:
        q = (extra[t]["latency"] or {}).get("quiet")
        if q:
            L.append(f"- {t} latency run: quiet window {'yes' if q['quiet'] else 'NO (contended)'} "
                     f"(waited {q['waited_s']} s; "
                     + (f"CPU {q['before']['cpu_busy_pct']:.0f}% busy before, {q['after']['cpu_busy_pct']:.0f}% after; "
                        if q["before"].get("cpu_busy_pct") is not None else "")
                     + f"load {q['before']['loadavg_1min']} before, "
                     f"{q['after']['loadavg_1min']} after; training processes seen: "
                     f"{len(q['before']['training_processes'])}"
                     + (f", paused (stopped, no CPU): {len(q['before']['paused_processes'])}"
                        if q["before"].get("paused_processes") else "") + ").")
    if lat_env:
        L.append(f"- Latency environment: {lat_env.get('cpu_model')}, OMP_NUM_THREADS={lat_env.get('OMP_NUM_THREADS')}, "
                 f"paddle {lat_env.get('paddle_version')}.")
    return L
