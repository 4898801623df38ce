"""The report: benchmarks/results.json, docs/benchmarks.md, docs/pareto.png and the README table, from the
result files and run directories only. A report that would drop committed rows is refused."""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from typing import Dict, List, Sequence

from benchmarks import born, full_teacher, rows_documents, speed_goals
from benchmarks.jobs import Matrix
from benchmarks.plot import plot_pareto
from benchmarks.readme_table import readme_table
from benchmarks.reviews import (
    PER_REVIEW,
    carried_reviews,
    per_review_lines,
    per_review_rows,
    review_tables_lost,
)
from benchmarks.rows import (
    METRIC_LABEL,
    _f,
    collect_rows,
    goals,
    long_input_effect,
    markdown_table,
    stage1_effect,
    summary_lines,
)
from benchmarks.util import read_json, write_json, write_text
from ernie_tiny_distill.errors import UserError

logger = logging.getLogger(__name__)


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


def render_markdown(m: Matrix, rows: List[Dict], extra: Dict, command: str,
                    review_rows: Sequence[Dict] = ()) -> str:
    """docs/benchmarks.md: setup, chosen hyper-parameters, environment, results, goals, effects, commands."""
    L = _header_lines(m, rows, command)
    L += _setup_lines(m)
    L += _sweep_lines(m, extra)
    L += _environment_lines(m, extra)
    L += _results_lines(m, rows, review_rows)
    L += _goal_and_effect_lines(m, rows)
    L += _command_lines(m, rows)
    return "\n".join(L) + "\n"


def _header_lines(m: Matrix, rows: List[Dict], command: str) -> List[str]:
    p = m.p
    L = [f"# Benchmarks: teacher vs distilled students on IMDB and CoNLL-2003 (profile `{p.name}`)", "",
         f"Generated by `{command}` from the run directories under `{p.runs_dir}/` "
         f"({time.strftime('%Y-%m-%d %H:%M')}). Every number below comes from those runs; "
         "raw rows: `benchmarks/" + p.results_name + "`, figure: `docs/pareto.png`.", ""]
    speed = speed_goals.load_results()  # end-to-end figures lead the report when they were measured
    L += speed_goals.render_section(speed) if speed else []
    return L + ["## Summary", ""] + summary_lines(rows, m.tasks, list(p.variants))


def _setup_lines(m: Matrix) -> List[str]:
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


def _sweep_lines(m: Matrix, extra: Dict) -> List[str]:
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


def _environment_lines(m: Matrix, extra: Dict) -> List[str]:
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


def _results_lines(m: Matrix, rows: List[Dict], review_rows: Sequence[Dict]) -> List[str]:
    p = m.p
    L = ["", "## Results", ""]
    for t in m.tasks:
        trows = [r for r in rows if r["task"] == t]
        metric = METRIC_LABEL.get(trows[0]["metric_name"], trows[0]["metric_name"]) if trows else "metric"
        L += [f"### {p.tasks[t].title} — test {metric} on the full test split", "", markdown_table(trows), ""]
        L += full_teacher.note_lines(trows)
        if any(r.get("carried") for r in trows):
            L += ["† carried over from an earlier run of this profile (benchmarks/results.json): its runs are not "
                  "on the machine that wrote this report; its latency was measured in that run, against the "
                  "teacher of that run.", ""]
        L.append("Per-seed test scores and dev scores: `benchmarks/" + p.results_name + "` (`per_seed`, `dev_metric`).")
        L.append("")
    L += per_review_lines(m, review_rows)
    pending = [j.name for j in m.jobs() if not m.is_done(j.name)]
    L += ["## Rows not run (yet)", ""]
    L += ([f"The matrix has {len(pending)} unfinished job(s); each resumes with its command (finished stages "
           "are skipped):", ""] + [f"- `python tools/reproduce.py --task {n.split('/')[0]} --only {n}`" for n in pending]
          if pending else ["None: every job of the matrix has finished."])
    L.append("")
    return L


def _goal_and_effect_lines(m: Matrix, rows: List[Dict]) -> List[str]:
    L = ["## Goals", ""] + goals(rows, m.tasks)
    document_goals = rows_documents.goal_lines(rows, m)
    if document_goals:
        L += ["", "## Whole documents and teacher ensembles: goal", ""] + document_goals
    L += ["", "## Does stage 1 (general distillation) help over task KD alone?", ""] + stage1_effect(rows, m.tasks)
    L += ["", "What the stage-1 students of the CPU profile learned, measured with `benchmarks/probe_spread.py`, and a "
          "loss variant tried: [stage1_imdb.md](stage1_imdb.md)."]
    L += ["", "## Students born from the teacher: goals", "",
          "Students A′ (Ap) and B′ (Bp) start from the fine-tuned teacher (`model.student.init: teacher_pruned`): "
          "layers, heads and FFN neurons kept by importance, B′ also projected to a narrower residual stream. "
          "Goals: full test sets; speed-up = teacher p50 / student p50 measured interleaved in one run.", ""]
    L += born.goals(rows, m.tasks)
    L += ["", "### Ablation: what each ingredient adds (dev; test beside it)", ""] + born.ablation(rows, m.tasks)
    L += ["", "## Does the initialisation matter?", "",
          "Each student born from the teacher against the random-encoder student of its speed class (A: ~4×, "
          "B: ~10×), the recipe of each that is best on dev:", ""] + born.init_matters(rows, m.tasks)
    L += ["", "A separately pretrained small student (paraphrase-MiniLM-L3-v2, 3 layers × 384; Turc et al. 2019 found "
          "pretrained compact students beat ones distilled from scratch) against the students born from the teacher, "
          "same recipe:", ""] + born.pretrained_small(rows, m.tasks)
    decoding_lines = decoding_table(rows, m.tasks)
    if decoding_lines:
        L += ["", "## Tag decoding", ""] + decoding_lines
    long_lines = long_input_effect(rows, m)
    if long_lines:
        L += ["", "## Does student B gain from reading longer inputs?", ""] + long_lines
    return L


def _command_lines(m: Matrix, rows: List[Dict]) -> List[str]:
    p = m.p
    L = ["", "## Commands", "",
          f"Whole matrix (resumable; finished stages are skipped): `python tools/reproduce.py --task all "
          f"--profile {p.name}`; report only: `python tools/reproduce.py --task all --profile {p.name} --report-only`.",
          "Each row below was produced by the listed `tools/train.py` commands (generated configs in "
          f"`{p.configs_dir()}/`), or equivalently by its `tools/reproduce.py --only` command.", ""]
    for r in rows:
        L += row_command_lines(r)
    return L


def row_command_lines(r: Dict) -> List[str]:
    """A row's entry in the report's list of commands: its command and up to 3 training commands."""
    return [f"- {r['task']} / {r['model']} / {r['variant']}: `{r['command']}`"] + [
        f"  - `{c}`" for c in (r.get("train_commands") or [])[:3] if c and c != r["command"]]


def decoding_table(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    """Tagging rows: dev/test metric under per-word argmax and IOB2-constrained Viterbi, and the difference."""
    from ernie_tiny_distill.tasks.base import DEFAULT_DECODING

    scored = [r for r in rows if r["task"] in tasks and r.get("by_decoding")]
    if not scored:
        return []
    tagging = sorted({r["task"] for r in scored})
    name = METRIC_LABEL.get(scored[0]["metric_name"], scored[0]["metric_name"])
    commands = ", ".join(f"`python tools/reproduce.py --task {t} --only {t}/decoding`" for t in tagging)
    out = [f"Each run's `best/` scored with both tag decodings ({name}, %, mean over the row's seeds): per-word "
           "argmax and IOB2-constrained Viterbi (`decoding.py`). The rows above show "
           f"`{DEFAULT_DECODING}` (`tasks/base.py`) where a run has it. `best/ chosen by`: the decoding of "
           "the training-time dev evaluation that picked the checkpoint; runs that finished before Viterbi became "
           f"the default were selected by argmax dev {name} and re-scored by {commands} (`<run>/decoding.json`).",
           "", "| model | variant | best/ chosen by | dev argmax | dev Viterbi | Δ dev | test argmax | "
           "test Viterbi | Δ test |", "|---|---|---|---|---|---|---|---|---|"]

    def pct(x):
        return None if x is None else 100 * x

    for r in scored:
        a, v = r["by_decoding"].get("argmax") or {}, r["by_decoding"].get("viterbi") or {}
        cells = []
        for split in ("dev", "test"):
            x, y = pct(a.get(split)), pct(v.get(split))
            cells += [_f(x), _f(y), _f(y - x if x is not None and y is not None else None, "{:+.2f}")]
        out.append("| " + " | ".join([r["model"], r["variant"], r.get("best_selected_by") or "–", *cells]) + " |")
    others = [r for r in rows if r["task"] in tagging and r.get("metric") is not None and not r.get("by_decoding")
              and r["variant"] != "tfidf_lr"]
    int8 = [r for r in others if r["variant"] == "int8"]
    if int8:
        out += ["", "INT8 rows are scored by their export's evaluation, with the decoding their source run recorded "
                f"({', '.join(sorted({str(r.get('decoding') or 'argmax') for r in int8}))}); their % of teacher "
                "compares with the teacher under the same decoding."]
    if len(others) > len(int8):
        out += ["", f"{len(others) - len(int8)} row(s) without a run here to re-score (carried over, †) keep the "
                "argmax scores they were committed with."]
    return out


README_BEGIN = "<!-- benchmarks:begin (generated by tools/reproduce.py --report-only; do not edit) -->"
README_END = "<!-- benchmarks:end -->"


def update_readme(path: str, table: str) -> bool:
    """Replace the text between README_BEGIN and README_END in `path`; False when the markers are absent."""
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    new = text[:start + len(README_BEGIN)] + "\n" + table + "\n" + text[end:]
    if new != text:
        write_text(path, new)
    return True


def _key(r: Dict) -> tuple:
    return (r.get("task"), r.get("model"), r.get("variant"))


def _missing_rows(results_path: str, rows: List[Dict]) -> List[Dict]:
    """Rows with a metric in the results file at `results_path` that `rows` no longer give. A row's command names
    the job that produced it, so an old row whose command a new row has (e.g. an INT8 row after the exported
    recipe changed its name) is replaced, not missing."""
    old = read_json(results_path)
    if not isinstance(old, list):
        return []
    have = {_key(r) for r in rows if r.get("metric") is not None}
    commands = {r.get("command") for r in rows if r.get("metric") is not None and r.get("command")}
    return [r for r in old if isinstance(r, dict) and r.get("metric") is not None and _key(r) not in have
            and r.get("command") not in commands]


def dropped_rows(results_path: str, rows: List[Dict]) -> List[str]:
    """Rows with a metric in the results file already at `results_path` that `rows` would not have."""
    return [" / ".join(map(str, _key(r))) for r in _missing_rows(results_path, rows)]


def report_paths(m: Matrix) -> Dict[str, str]:
    out, name = m.p.out_dir, m.p.name
    return {"results": os.path.join(out, "benchmarks", m.p.results_name),
            "markdown": os.path.join(out, "docs", "benchmarks.md" if name == "cpu" else f"benchmarks_{name}.md"),
            "figure": os.path.join(out, "docs", "pareto.png" if name == "cpu" else f"pareto_{name}.png"),
            "readme": os.path.join(out, "README.md")}


def _content(r: Dict) -> Dict:
    return {k: v for k, v in r.items() if k != "carried"}


def nothing_new(results_path: str, rows: List[Dict]) -> bool:
    """The results file has rows, and each row the runs give with a metric equals its committed version."""
    old = read_json(results_path)
    if not isinstance(old, list) or not old:
        return False
    committed = {_key(r): _content(r) for r in old if isinstance(r, dict)}
    # a JSON round trip makes the runs' rows comparable with the file's (tuples become lists)
    fresh = json.loads(json.dumps([r for r in rows if r.get("metric") is not None or r.get("variant") == PER_REVIEW]))
    return all(committed.get(_key(r)) == _content(r) for r in fresh)


def carry_over(results_path: str, rows: List[Dict]) -> List[Dict]:
    """`rows` plus the rows of the results file that the runs no longer give (their runs are elsewhere), each
    marked `carried` so the report says where it came from; a row the runs give replaces its old version, and so
    does any row the same command now produces under another name."""
    kept = [dict(r, carried=r.get("carried") or "an earlier run of this profile (benchmarks/results.json)")
            for r in _missing_rows(results_path, rows)]
    fresh = [r for r in rows if r.get("metric") is not None or _key(r) not in {_key(k) for k in kept}]
    # grouped by task, the teacher first; otherwise the runs' order, then the carried rows
    return sorted(fresh + kept, key=lambda r: (r.get("task") or "", 0 if r.get("variant") == "teacher" else 1))


def report(m: Matrix, command: str, force: bool = False, keep: bool = False) -> Dict[str, str]:
    """Write the report; refuse (UserError, nothing written) when it would drop rows the results file has, or
    a per-review latency table the markdown has (with `keep`, such rows are carried over and marked instead).
    With `keep`, runs that give no row different from the results file leave all three files as they are
    (returns {"unchanged": path}); `force` rewrites."""
    paths = report_paths(m)
    results, md, png = paths["results"], paths["markdown"], paths["figure"]
    rows, extra = collect_rows(m)
    rows = full_teacher.with_recorded(rows, read_json(results))   # recorded by their command, not by the runs
    review = per_review_rows(m, extra)
    if keep and not force and nothing_new(results, rows + review):
        # every row would be carried over: the committed report (its data, environment and per-review latency
        # lines included, which only the runs can give) is already that report, so it stays as it is
        logger.info("%s: the runs under %s/ give no row that differs from it; report left unchanged",
                    results, m.p.runs_dir)
        return {"unchanged": results}
    if keep:
        rows = carry_over(results, rows)
        review += carried_reviews(results, review)
    dropped = dropped_rows(results, rows)
    dropped += [f"{t} / latency per real review" for t in review_tables_lost(md, m, review)]
    if dropped and not force:
        raise UserError(
            f"{results}: the runs under {m.p.runs_dir}/ give {sum(r['metric'] is not None for r in rows)} rows "
            f"with a metric, and {len(dropped)} row(s) already in that file would be lost (e.g. {dropped[0]}); "
            f"not writing it, {md}, {png} or the README table. Finish or restore the runs, write elsewhere with "
            "--out-dir DIR, or overwrite anyway with --force-report")
    write_json(results, rows + review)
    write_text(md, render_markdown(m, rows, extra, command, review))
    written = {"results": results, "markdown": md}
    # the README summary only shows the whole matrix (a single-task run must not drop the other task's rows)
    if set(m.tasks) == set(m.p.tasks):
        if update_readme(paths["readme"], readme_table(rows, m.tasks, command,
                                                    speed_goals.end_to_end_speedups(speed_goals.load_results()))):
            written["readme"] = paths["readme"]
    if plot_pareto(rows, m.tasks, png, m.p):
        written["figure"] = png
    return written
