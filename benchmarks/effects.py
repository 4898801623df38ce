"""What the benchmark rows show about two choices of recipe: stage 1 (general distillation) before task KD,
and student B reading longer inputs; each compared on the seeds both rows ran."""
from __future__ import annotations

from typing import Dict, List, Sequence

from benchmarks.jobs import Matrix
from benchmarks.rows import _get, _paired, _seeds_note


# (recipe with stage 1 first, the same recipe without it): random-init students, and students born from the teacher
STAGE1_PAIRS = (("two_stage_kd", "task_kd"), ("two_stage_kd_recipe", "kd_recipe"))


def stage1_effect(rows: List[Dict], tasks: Sequence[str]) -> List[str]:
    out = []
    for t in tasks:
        for model, (two_v, kd_v) in [(m, p) for p in STAGE1_PAIRS for m in ("B", "A", "Bp", "Ap", "Ap3")]:
            kd, two = _get(rows, t, model, kd_v), _get(rows, t, model, two_v)
            if not (kd and two and kd["metric"] is not None and two["metric"] is not None):
                continue
            common, two_mean, kd_mean = _paired(two, kd)
            diff = 100 * (two_mean - kd_mean)
            paired = ""
            if len(common) > 1:
                d = [100 * (two["per_seed"][s] - kd["per_seed"][s]) for s in common]
                wins = sum(x > 0 for x in d)
                paired = f"; per seed {', '.join(f'{x:+.2f}' for x in d)} (stage 1 better in {wins} of {len(d)})"
            verdict = "helps" if diff > 0 else ("makes no difference" if diff == 0 else "does not help")
            noise = kd.get("metric_std")
            if noise is not None and abs(diff) < 100 * noise:
                verdict += f" (within one seed standard deviation of {kd_v})"
            out.append(f"- {t}, student {model}: {two_v} {100 * two_mean:.2f} vs {kd_v} {100 * kd_mean:.2f} "
                       f"({_seeds_note(common, two, kd)}) = {diff:+.2f} points: stage 1 {verdict}{paired}.")
    return out or ["- not measured yet."]


def long_input_effect(rows: List[Dict], m: "Matrix") -> List[str]:
    """Student B reading `long_seq` tokens vs the same recipe (two-stage) at the profile's length, same seeds,
    and what its latency costs against the teacher at 128."""
    out = []
    for t in m.tasks:
        spec = m.p.tasks[t]
        if not spec.long_seq:
            continue
        long_row = next((r for r in rows if r["task"] == t and r["variant"] == f"len{spec.long_seq}"), None)
        short = _get(rows, t, m.sweeper, "two_stage_kd")
        if not (long_row and short and long_row["metric"] is not None and short["metric"] is not None):
            out.append(f"- {t}: not measured yet.")
            continue
        common, long_mean, short_mean = _paired(long_row, short)
        short_len = m.teacher_cfg(t).model.max_seq_length  # the students' length and the teacher's
        line = (f"- {t}, student {m.sweeper}, two-stage recipe: {spec.long_seq} tokens {100 * long_mean:.2f} vs "
                f"{short_len} tokens {100 * short_mean:.2f} "
                f"({_seeds_note(common, long_row, short)}) = {100 * (long_mean - short_mean):+.2f} points")
        if long_row.get("latency_ms_p50"):
            line += (f"; p50 latency at {spec.long_seq} tokens {long_row['latency_ms_p50']:.2f} ms "
                     f"({long_row['speedup_vs_teacher']:.1f}× faster than the teacher at {m.p.latency['seq_len']})")
        out.append(line + f". The teacher gives its soft labels at {short_len} tokens "
                   "(`distill.teacher_max_seq_length`); the student starts from the same stage-1 run as two_stage_kd.")
    return out


