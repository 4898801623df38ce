"""An exponential moving average of the trained weights (train.average_decay), evaluated and kept as best/.

On a small dev set the score of the raw weights jumps from one evaluation to the next, and the best checkpoint
is partly chosen by that noise; the average of the last few hundred steps' weights moves smoothly.
"""
from __future__ import annotations

import contextlib
from typing import Dict

import numpy as np
import paddle

from ernie_tiny_distill.errors import UserError


class WeightAverage:
    """shadow = d·shadow + (1 − d)·weights after each optimizer step, with d = min(decay, (1 + n) / (10 + n))
    at update n (the usual warm-up: the first updates follow the weights closely)."""

    def __init__(self, layer: paddle.nn.Layer, decay: float):
        if not 0.0 < decay < 1.0:
            raise UserError(f"train.average_decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = float(decay)
        self.params = {name: p for name, p in layer.named_parameters() if not p.stop_gradient}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}
        self.updates = 0

    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        with paddle.no_grad():
            for name, p in self.params.items():
                shadow = self.shadow[name]
                paddle.assign(d * shadow + (1.0 - d) * p.detach(), output=shadow)

    @contextlib.contextmanager
    def applied(self):
        """The averaged weights in the layer inside the block (evaluation, saving best/), the trained ones after."""
        trained = {name: p.detach().clone() for name, p in self.params.items()}
        for name, p in self.params.items():
            p.set_value(self.shadow[name])
        try:
            yield
        finally:
            for name, p in self.params.items():
                p.set_value(trained[name])

    def tensors(self) -> Dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(t.numpy()) for name, t in self.shadow.items()}

    def load(self, tensors: Dict[str, np.ndarray], updates: int, where: str) -> None:
        if set(tensors) != set(self.shadow):
            raise UserError("the checkpoint's weight average does not match the model being trained", where=where,
                            hint="use a new output_dir, or train.resume=false to start over")
        for name, value in tensors.items():
            self.shadow[name] = paddle.to_tensor(value)
        self.updates = int(updates)
