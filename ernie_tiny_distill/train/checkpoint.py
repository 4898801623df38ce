"""Training checkpoints for resume: safetensors + JSON, written to a temp dir and renamed (never half-written)."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from typing import Dict, Optional, Tuple

import numpy as np
import paddle
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.util import fsutil

STATE_FILE = "trainer_state.json"
AVERAGE_FILE = "average.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_TMP_PREFIX = ".tmp-step-"  # a checkpoint being written; left behind only by a crash


def _to_numpy(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.numpy())


def _param_names(layer: paddle.nn.Layer) -> Dict[str, str]:
    """Paddle's internal parameter names (e.g. linear_3.w_0, process-dependent) -> structured names."""
    return {p.name: name for name, p in layer.named_parameters()}


def optimizer_state(optimizer, layer) -> Tuple[Dict[str, np.ndarray], Dict]:
    """Split the optimizer's state into tensors keyed by structured parameter names, and JSON-able extras.

    Paddle keys accumulators by internal names that depend on creation order; structured names do not,
    so a resumed process that builds its layers in another order still matches them up.
    """
    internal = sorted(_param_names(layer).items(), key=lambda kv: -len(kv[0]))  # longest prefix first
    tensors, extras = {}, {}
    for key, value in optimizer.state_dict().items():
        if isinstance(value, (paddle.Tensor, np.ndarray)):
            for pname, structured in internal:
                if key.startswith(pname + "_"):
                    tensors[f"{structured}::{key[len(pname) + 1:]}"] = (
                        _to_numpy(value) if isinstance(value, paddle.Tensor) else value)
                    break
            else:
                tensors[f"::{key}"] = _to_numpy(value) if isinstance(value, paddle.Tensor) else value
        elif key == "master_weights":
            continue  # only exists under fp16 multi-precision, which this trainer does not use
        else:
            extras[key] = value
    return tensors, extras


def load_optimizer_state(optimizer, layer, tensors: Dict[str, np.ndarray], extras: Dict) -> None:
    by_structured = {name: p.name for name, p in layer.named_parameters()}
    state = dict(extras)
    for key, value in tensors.items():
        structured, _, suffix = key.partition("::")
        internal = by_structured.get(structured) if structured else None
        if structured and internal is None:
            raise UserError(f"checkpoint has optimizer state for unknown parameter {structured!r}")
        state[f"{internal}_{suffix}" if structured else suffix] = paddle.to_tensor(value)
    optimizer.set_state_dict(state)


def save(directory: str, step: int, layer, optimizer, state: Dict, keep: int, average=None) -> str:
    """Write checkpoints/step-N atomically; keep the newest `keep`. Returns the checkpoint path.
    `average`: the run's WeightAverage (train.average_decay), saved beside the weights."""
    final = os.path.join(directory, f"step-{step}")
    try:
        with fsutil.atomic_dir(final, durable=True, prefix=f"{_TMP_PREFIX}{step}-") as tmp:
            save_file({k: _to_numpy(v) for k, v in layer.state_dict().items()},
                      os.path.join(tmp, "model.safetensors"))
            tensors, extras = optimizer_state(optimizer, layer)
            save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
            if average is not None:
                save_file(average.tensors(), os.path.join(tmp, AVERAGE_FILE))
                state = {**state, "average_updates": average.updates}
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump({**state, "step": step, "optimizer_extras": extras}, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as SafetensorError
        full = getattr(e, "errno", None) == errno.ENOSPC or "os error 28" in str(e)
        reason = "the disk is full" if full else str(e)
        previous = latest(directory)
        raise UserError(
            f"could not write checkpoint for step {step}: {reason}",
            where=directory,
            hint=f"the previous checkpoint is intact: {previous}" if previous else "no earlier checkpoint exists",
        ) from None
    _rotate(directory, keep, current=step)
    return final


def _steps(directory: str):
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _STEP_DIR.match(name)
        # a directory only gets its step-N name by the final rename, so it is complete if it has the state file
        if m and os.path.isfile(os.path.join(directory, name, STATE_FILE)):
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest(directory: str) -> Optional[str]:
    steps = _steps(directory)
    return steps[-1][1] if steps else None


def _discard(path: str) -> None:
    """Remove a checkpoint directory: renamed to a temp name first, so a kill mid-removal never leaves a
    half-deleted (or empty) step-N behind, only a .tmp-step-* that the next save or resume removes."""
    parent, name = os.path.split(path)
    doomed = os.path.join(parent, f".tmp-{name}-deleting")
    try:
        os.replace(path, doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def remove_incomplete(directory: str) -> None:
    """Remove temp dirs of an interrupted save or removal and step-N dirs without a state file (e.g. emptied by a
    kill during rotation with an earlier version): they are never resumed from, only clutter."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        # dot names: .tmp-step-N-* (a save or a removal cut short), .step-N.old-* (a replacement cut short)
        if name.startswith(".") or (_STEP_DIR.match(name) and os.path.isdir(path)
                                    and not os.path.isfile(os.path.join(path, STATE_FILE))):
            shutil.rmtree(path, ignore_errors=True)


def _rotate(directory: str, keep: int, current: int) -> None:
    """Keep the `keep` newest checkpoints up to `current`; later steps belong to an abandoned earlier run."""
    steps = _steps(directory)
    for step, path in steps:
        if step > current:
            _discard(path)
    for _, path in [sp for sp in steps if sp[0] <= current][:-keep]:
        _discard(path)
    remove_incomplete(directory)


def load(path: str, layer, optimizer, average=None) -> Dict:
    """Restore weights, optimizer state and the weight average (when `average`) from a checkpoint; returns the
    trainer state dict."""
    try:
        with open(os.path.join(path, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
        weights = load_file(os.path.join(path, "model.safetensors"))
        opt_tensors = load_file(os.path.join(path, "optimizer.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise UserError(f"cannot read checkpoint: {e}", where=path) from None
    own = layer.state_dict()
    if set(weights) != set(own):
        missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        raise UserError(
            f"checkpoint does not match the model being trained (missing {missing[:3]}, unexpected {extra[:3]})",
            where=path, hint="use a new output_dir, or train.resume=false to start over",
        )
    for key, value in weights.items():
        if tuple(own[key].shape) != value.shape:
            raise UserError(f"checkpoint tensor {key} has shape {value.shape}, the model expects "
                            f"{tuple(own[key].shape)}", where=path)
    layer.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    load_optimizer_state(optimizer, layer, opt_tensors, state.pop("optimizer_extras", {}))
    updates = state.pop("average_updates", None)
    if average is not None:
        if updates is None or not os.path.isfile(os.path.join(path, AVERAGE_FILE)):
            raise UserError("the checkpoint has no weight average, but train.average_decay is set", where=path,
                            hint="resume with the run's own train.average_decay, or train.resume=false")
        average.load(load_file(os.path.join(path, AVERAGE_FILE)), updates, path)
    return state
