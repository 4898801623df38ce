"""One training loop for all stages: fine-tuning, general (stage 1) and task (stage 2) distillation.

Why not PaddleNLP's Trainer: its 2.8 checkpoints pickle (training args, optimizer, scheduler and RNG via
paddle.save) and are written in place, so an interrupted save can be picked up half-written; distillation
also needs a frozen second model and cached teacher outputs keyed by example. This loop keeps PaddleNLP's
models, tokenizers and LinearDecayWithWarmup, and writes safetensors + JSON checkpoints atomically.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import paddle
import paddle.nn as nn
from paddlenlp.transformers import LinearDecayWithWarmup
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ernie_tiny_distill.config import Config
from ernie_tiny_distill.data import batching
from ernie_tiny_distill.distill.distiller import Distiller
from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.tasks.base import Feature, Task
from ernie_tiny_distill.train import checkpoint, rundir
from ernie_tiny_distill.train.averaging import WeightAverage
from ernie_tiny_distill.train.evaluation import _to_tensors, evaluate  # noqa: F401 (pipeline/measure reads _to_tensors here)

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """What one fit() call carries from step to step."""

    state: Dict
    start: int
    total_steps: int
    per_epoch: int
    eval_every: int
    lengths: List[int]
    optimizer: object
    scheduler: object
    log_path: str
    writer: object
    progress: object
    earlier_seconds: float
    skipped: int
    started: float
    average: Optional[WeightAverage] = None  # train.average_decay
    sums: Dict[str, float] = field(default_factory=dict)
    n_logged: int = 0
    epoch_batches: Optional[list] = None
    epoch_of_batches: Optional[int] = None


class Trainer:
    """The loop, evaluation, checkpoints and data parallelism around a Distiller (which owns the losses)."""

    def __init__(self, cfg: Config, task: Task, distiller: Distiller):
        self.cfg = cfg
        self.task = task
        self.distiller = distiller
        self.trainable = distiller.trainable
        self.pad_token_id = distiller.pad_token_id
        self.world_size = init_distributed()
        self.rank = paddle.distributed.get_rank()
        self.is_main = self.rank == 0
        self.show_progress = cfg.train.progress and self.is_main
        self.run_dir = cfg.output_dir
        self.ckpt_dir = os.path.join(self.run_dir, "checkpoints")

    # ------------------------------------------------------------ evaluation

    def evaluate(self, model, features: Sequence[Feature], examples: Sequence, split: str = "dev") -> Dict[str, object]:
        """Metrics on `split` (the stage-1 distillation loss for stage `general`, which has no labels)."""
        if self.cfg.stage == "general":
            return {"loss": self.eval_loss(features)}
        return evaluate(self.task, model, features, examples, self.cfg.train.eval_batch_size, self.pad_token_id,
                        progress=f"evaluate on {split}" if self.show_progress else None)

    def eval_loss(self, features: Sequence[Feature]) -> float:
        """Mean weighted distillation loss on held-out unlabeled text (stage 1 has no labels to score)."""
        self.trainable.eval()
        total, count = 0.0, 0
        lengths = [len(f["input_ids"]) for f in features]
        with paddle.no_grad():
            for k, idx in enumerate(batching.eval_batches(lengths, self.cfg.train.eval_batch_size)):
                batch = _to_tensors(batching.collate([features[i] for i in idx], self.pad_token_id))
                total += float(self.distiller.combine(self.distiller.loss_parts(batch, step=10**9 + k))) * len(idx)
                count += len(idx)
        return total / max(1, count)

    # ------------------------------------------------------------ training

    def _optimizer(self, total_steps: int):
        t = self.cfg.train
        scheduler = LinearDecayWithWarmup(t.learning_rate, total_steps, t.warmup_ratio)
        # no weight decay on biases and LayerNorm parameters (standard for BERT fine-tuning)
        decay = {p.name for n, p in self.trainable.named_parameters() if not any(s in n for s in ("bias", "norm"))}
        trainable = [p for p in self.trainable.parameters() if not p.stop_gradient]  # LoRA freezes the base
        optimizer = paddle.optimizer.AdamW(
            learning_rate=scheduler, parameters=trainable, weight_decay=t.weight_decay,
            apply_decay_param_fun=lambda name: name in decay,
            grad_clip=nn.ClipGradByGlobalNorm(t.max_grad_norm) if t.max_grad_norm > 0 else None,
        )
        return optimizer, scheduler

    def fit(self, train: Sequence[Feature], dev: Sequence[Feature], dev_examples: Sequence,
            on_best=None) -> Dict[str, object]:
        """Train; evaluate on dev every `eval_every` steps (and at the end); call on_best(metrics) on improvement.

        Resumes from the newest checkpoint in output_dir/checkpoints when train.resume is true.
        """
        run = self._start(train)
        with logging_redirect_tqdm(), run.progress:  # log lines go above the bar instead of being glued to it
            for step in range(run.start, run.total_steps):
                self._train_step(run, train, step)
                if (step + 1) % run.eval_every == 0 or step + 1 == run.total_steps:
                    if self._evaluate_and_save(run, step, dev, dev_examples, on_best):
                        break
        if run.writer:
            run.writer.close()
        if self.world_size > 1:
            self._check_replicas_agree()
        run.state.update(total_steps=run.total_steps, skipped_batches=run.skipped,
                         earlier_seconds=run.earlier_seconds,
                         seconds=round(run.earlier_seconds + time.time() - run.started, 1))
        return run.state

    def _start(self, train: Sequence[Feature]) -> "_Run":
        """The run's schedule, optimizer and state, resumed from the newest checkpoint when train.resume."""
        t = self.cfg.train
        lengths = [len(f["input_ids"]) for f in train]
        per_epoch = len(batching.train_batches(lengths, t.batch_size, t.seed, 0, self.rank, self.world_size))
        if per_epoch == 0:
            raise UserError(f"the training set has {len(train)} examples, fewer than one batch per process")
        total_steps = t.max_steps or max(1, math.ceil(t.epochs * per_epoch), t.min_steps or 0)
        optimizer, scheduler = self._optimizer(total_steps)
        average = WeightAverage(self.trainable.student, t.average_decay) if t.average_decay else None
        # Data parallel without paddle.DataParallel: loss_parts calls the student (and the projection) directly,
        # which DataParallel's reducer would never see; gradients are averaged explicitly in _sync_gradients.
        state, start = self._resume(optimizer, total_steps, average)
        log_path = os.path.join(self.run_dir, "train_log.jsonl")
        if self.is_main:
            checkpoint.remove_incomplete(self.ckpt_dir)  # e.g. a step-N emptied by a kill during rotation
            rundir.truncate_log(log_path, start)  # lines past the checkpoint are logged again by this run
        if self.world_size > 1:
            self._broadcast_parameters()  # every process starts from rank 0's weights
        if t.amp and not paddle.device.is_compiled_with_cuda():
            # measured on Paddle 3.3.1: dygraph auto_cast leaves CPU ops in float32, so say so
            logger.warning("train.amp=true has no effect on CPU (Paddle runs these ops in float32)")
        self._log_run_header(len(train), per_epoch, total_steps, lengths)
        # teacher outputs kept per example when the steps left meet examples more than once; the cache lives in
        # memory only, so a resumed run refills it lazily (recomputing, never reading stale states)
        self.distiller.plan_teacher_states(train, (total_steps - start) / per_epoch)
        progress = tqdm(total=total_steps, initial=start, desc=f"{self.cfg.stage} train", unit="step",
                        dynamic_ncols=True, disable=not self.show_progress)
        return _Run(state=state, start=start, total_steps=total_steps, per_epoch=per_epoch,
                    eval_every=t.eval_every or per_epoch, lengths=lengths, optimizer=optimizer, scheduler=scheduler,
                    log_path=log_path, writer=self._visualdl() if self.is_main else None, progress=progress,
                    earlier_seconds=float(state.get("train_seconds", 0.0)), skipped=state.get("skipped_batches", 0),
                    started=time.time(), average=average)

    def _resume(self, optimizer, total_steps: int, average: Optional[WeightAverage]):
        """(state, first step): a fresh state at step 0, or the newest checkpoint's when train.resume."""
        state = {"best_metric": None, "best_step": None, "history": [], "skipped_batches": 0}
        start = 0
        last = checkpoint.latest(self.ckpt_dir) if self.cfg.train.resume else None
        if not self.cfg.train.resume and checkpoint.latest(self.ckpt_dir) and self.is_main:
            # an earlier run's later steps would otherwise outrank this run's checkpoints on a future resume
            logger.warning("train.resume=false: removing the earlier checkpoints in %s", self.ckpt_dir)
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        if last:
            state = checkpoint.load(last, self.trainable, optimizer, average)
            start = state.pop("step")
            logger.info("resumed from %s (step %d of %d)", last, start, total_steps)
        # training time of earlier segments (up to the checkpoint) is in state, so a resumed run reports the total
        state["segments"] = state.get("segments", 0) + 1
        return state, start

    def _train_step(self, run: "_Run", train: Sequence[Feature], step: int) -> None:
        """One optimizer step (or a skipped batch), then the schedule, the progress bar and the loss log."""
        t = self.cfg.train
        epoch, position = divmod(step, run.per_epoch)
        if epoch != run.epoch_of_batches:
            run.epoch_batches = batching.train_batches(run.lengths, t.batch_size, t.seed, epoch, self.rank,
                                                       self.world_size)
            run.epoch_of_batches = epoch
        batch = _to_tensors(batching.collate([train[i] for i in run.epoch_batches[position]], self.pad_token_id))
        # dropout masks depend only on (seed, step, rank): a resumed run repeats them exactly
        paddle.seed((t.seed * 1_000_003 + step) * self.world_size + self.rank)
        self.trainable.train()
        with paddle.amp.auto_cast(enable=t.amp, dtype="bfloat16"):
            parts = self.distiller.loss_parts(batch, step)
            total = self.distiller.combine(parts)
        bad = [name for name, value in parts.items() if not math.isfinite(float(value))]
        if self._any_process(bool(bad)):  # every process skips or stops together
            self._skip_or_stop(run, step, parts, bad)
        else:
            total.backward()
            if self.world_size > 1:
                self._sync_gradients()
            run.optimizer.step()
            run.optimizer.clear_grad()
            if run.average:
                run.average.update()
            for name, value in parts.items():
                run.sums[name] = run.sums.get(name, 0.0) + float(value)
            run.sums["loss"] = run.sums.get("loss", 0.0) + float(total)
            run.n_logged += 1
        run.scheduler.step()
        run.progress.update(1)
        if run.n_logged and ((step + 1) % t.log_every == 0 or step + 1 == run.total_steps):
            record = {k: v / run.n_logged for k, v in run.sums.items()}
            record.update(step=step + 1, epoch=round((step + 1) / run.per_epoch, 3), lr=run.scheduler.get_lr())
            self._log(record, run.writer, run.log_path, run.progress)
            run.sums, run.n_logged = {}, 0

    def _skip_or_stop(self, run: "_Run", step: int, parts: Dict, bad: List[str]) -> None:
        """A non-finite loss on some process: stop with a UserError (train.on_nan=stop) or skip the batch."""
        what = f"the {', '.join(bad)} loss is {float(parts[bad[0]])}" if bad else \
            "a loss is not finite on another process"
        if self.cfg.train.on_nan != "skip":
            raise UserError(
                f"step {step + 1}: {what}; training stopped (train.on_nan=stop)",
                hint=f"the last good checkpoint is {checkpoint.latest(self.ckpt_dir) or '(none yet)'}; "
                     "lower train.learning_rate, or set train.on_nan=skip to skip such batches",
            )
        # no update from this batch; the step still counts (schedule, evaluation, checkpoint)
        run.skipped += 1
        run.state["skipped_batches"] = run.skipped
        logger.warning("step %d: %s; batch skipped (train.on_nan=skip)", step + 1, what)
        run.optimizer.clear_grad()

    def _evaluate_and_save(self, run: "_Run", step: int, dev: Sequence[Feature], dev_examples: Sequence,
                           on_best) -> bool:
        """Score dev, keep the best (on_best), write a checkpoint; True when train.patience says stop."""
        state, metric = run.state, self.task.metric_name
        with run.average.applied() if run.average else contextlib.nullcontext():  # scored and kept: the average
            metrics = self.evaluate(self.trainable.student, dev, dev_examples) if self.is_main else {}
            # back to training mode before on_best and the checkpoint: LoRA layers unmerge here, so the
            # checkpoint never holds merged weights (a resume would add the adapters twice)
            self.trainable.train()
            if self.is_main:
                self._record(state, step, metrics, run.writer, on_best)
        if self.is_main:
            state["train_seconds"] = round(run.earlier_seconds + time.time() - run.started, 1)
            checkpoint.save(self.ckpt_dir, step + 1, self.trainable, run.optimizer, state,
                            self.cfg.train.keep_checkpoints, run.average)
        if self.world_size > 1:
            paddle.distributed.barrier()
        # a plateau at the last planned step is not an early stop: the run used every step
        if step + 1 < run.total_steps and self._any_process(
                self.is_main and plateaued(state["history"], state["best_step"], self.cfg.train.patience)):
            logger.info("step %d: no better dev %s in %d evaluations (train.patience); stopping",
                        step + 1, metric, self.cfg.train.patience)
            state["stopped_early"] = step + 1
            return True
        return False

    def _record(self, state: Dict, step: int, metrics: Dict, writer, on_best) -> None:
        """Dev metrics into the history, the log and VisualDL; on_best(metrics) when they are a new best."""
        metric, sign = self.task.metric_name, 1 if self.task.greater_is_better else -1
        score = float(metrics[metric])
        improved = state["best_metric"] is None or sign * score > sign * state["best_metric"]
        state["history"].append({"step": step + 1, metric: score})
        logger.info("step %d dev %s = %.4f%s", step + 1, metric, score, " (best)" if improved else "")
        if writer:
            writer.add_scalar(f"dev/{metric}", score, step + 1)
        if improved:
            state["best_metric"], state["best_step"] = score, step + 1
            if on_best:
                on_best(metrics)

    # ------------------------------------------------------------ data parallel

    def _trained_parameters(self) -> list:
        return [p for p in self.trainable.parameters() if not p.stop_gradient]

    def _broadcast_parameters(self) -> None:
        for p in self.trainable.parameters():
            paddle.distributed.broadcast(p, src=0)

    def _sync_gradients(self) -> None:
        """Average gradients over processes: one all-reduce of all gradients concatenated."""
        grads = [p.grad for p in self._trained_parameters() if p.grad is not None]
        if not grads:
            return
        flat = paddle.concat([g.reshape([-1]).astype("float32") for g in grads])
        paddle.distributed.all_reduce(flat)
        flat = flat / self.world_size
        offset = 0
        for g in grads:
            n = int(g.numel())
            g.set_value(flat[offset:offset + n].reshape(g.shape).astype(g.dtype))
            offset += n

    def _any_process(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        value = paddle.to_tensor([1.0 if flag else 0.0])
        paddle.distributed.all_reduce(value, op=paddle.distributed.ReduceOp.MAX)
        return float(value.numpy()[0]) > 0

    def parameter_checksum(self) -> float:
        return float(sum(float(p.astype("float64").abs().sum()) for p in self.trainable.parameters()))

    def _check_replicas_agree(self) -> None:
        """After data-parallel training every process must hold the same weights; log it, warn if not."""
        local = self.parameter_checksum()
        high, low = paddle.to_tensor([local], dtype="float64"), paddle.to_tensor([-local], dtype="float64")
        paddle.distributed.all_reduce(high, op=paddle.distributed.ReduceOp.MAX)
        paddle.distributed.all_reduce(low, op=paddle.distributed.ReduceOp.MAX)
        high, low = float(high.numpy()[0]), -float(low.numpy()[0])
        if high == low:
            logger.info("process %d of %d: final parameter checksum %.10e, identical on all processes",
                        self.rank, self.world_size, local)
        else:
            logger.warning("process %d of %d: final parameter checksum %.10e differs between processes "
                           "(%.10e .. %.10e): the replicas diverged", self.rank, self.world_size, local, low, high)

    def _log_run_header(self, n_train: int, per_epoch: int, total_steps: int, lengths: Sequence[int]) -> None:
        t = self.cfg.train
        logger.info(
            "stage %s: %d training examples, batch %d x %d process(es) = effective batch %d, "
            "%d steps/epoch, %d steps; losses %s",
            self.cfg.stage, n_train, t.batch_size, self.world_size, t.batch_size * self.world_size, per_epoch,
            total_steps, ", ".join(f"{k}×{v:g}" for k, v in self.distiller.weights.items()),
        )
        if self.world_size > 1:
            shard = sorted(i for b in batching.train_batches(lengths, t.batch_size, t.seed, 0, self.rank,
                                                             self.world_size) for i in b)
            logger.info("process %d of %d: %d batches per epoch, batches %d, %d+%d, ... of each shuffled epoch "
                        "(disjoint from the other processes); epoch 1: %d examples, index digest %s",
                        self.rank, self.world_size, per_epoch, self.rank, self.rank, self.world_size, len(shard),
                        shard_digest(shard))

    def _visualdl(self):
        try:
            from visualdl import LogWriter
        except Exception:  # VisualDL is optional: training logs still go to train_log.jsonl
            return None
        return LogWriter(logdir=os.path.join(self.run_dir, "vdl"))

    def _log(self, record: Dict, writer, log_path: str, progress) -> None:
        if not self.is_main:
            return
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if writer:
            for key, value in record.items():
                if key not in ("step", "epoch"):
                    writer.add_scalar(f"train/{key}", value, record["step"])
        shown = {k: f"{v:.4f}" for k, v in record.items() if k not in ("step", "epoch", "lr")}
        progress.set_postfix(shown, refresh=False)
        if progress.disable:
            logger.info("step %d %s", record["step"], " ".join(f"{k}={v}" for k, v in shown.items()))


def plateaued(history: Sequence[Dict], best_step: Optional[int], patience: Optional[int]) -> bool:
    """True when the last `patience` evaluations all came after the best one (read from the history, so a
    resumed run counts the evaluations before its checkpoint too)."""
    if not patience or best_step is None:
        return False
    return sum(1 for h in history if h["step"] > best_step) >= patience


def shard_digest(indices: Sequence[int]) -> str:
    """A short fingerprint of the example indices a process trains on (logged, so shards can be compared)."""
    import hashlib

    return hashlib.sha1(",".join(map(str, sorted(indices))).encode()).hexdigest()[:12]


def init_distributed() -> int:
    """Join the process group when started by `python -m paddle.distributed.launch` (gloo on CPU, NCCL on GPU).

    Returns the number of processes; 1 (and nothing to do) for an ordinary run.
    """
    world_size = paddle.distributed.get_world_size()
    if world_size > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()
    return world_size
