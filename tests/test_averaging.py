"""train.average_decay: the exponential moving average of the weights, its exact update, and that best/ holds it."""
import numpy as np
import paddle
import pytest

from ernie_tiny_distill.errors import UserError
from ernie_tiny_distill.train import checkpoint
from ernie_tiny_distill.train.averaging import WeightAverage


def _layer():
    paddle.seed(0)
    layer = paddle.nn.Linear(3, 2)
    layer.bias.stop_gradient = True  # a frozen parameter is not averaged
    return layer


def test_update_follows_the_warm_up_then_the_decay():
    layer = _layer()
    average = WeightAverage(layer, decay=0.5)
    w0 = layer.weight.numpy().copy()
    assert list(average.shadow) == ["weight"]
    layer.weight.set_value(w0 + 1.0)
    average.update()  # update 1: d = min(0.5, 2 / 11)
    d1 = 2 / 11
    np.testing.assert_allclose(average.shadow["weight"].numpy(), d1 * w0 + (1 - d1) * (w0 + 1.0), rtol=0, atol=1e-6)
    for _ in range(20):
        average.update()  # update 21: (1 + 21) / (10 + 21) > 0.5, so d = 0.5
    before = average.shadow["weight"].numpy().copy()
    layer.weight.set_value(w0 + 3.0)
    average.update()
    np.testing.assert_allclose(average.shadow["weight"].numpy(), 0.5 * before + 0.5 * (w0 + 3.0), rtol=0, atol=1e-6)
    assert average.updates == 22


def test_applied_swaps_the_average_in_and_the_weights_back():
    layer = _layer()
    average = WeightAverage(layer, decay=0.9)
    trained = layer.weight.numpy() + 2.0
    layer.weight.set_value(trained)
    with average.applied():
        np.testing.assert_array_equal(layer.weight.numpy(), average.shadow["weight"].numpy())
    np.testing.assert_array_equal(layer.weight.numpy(), trained)


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(UserError, match="train.average_decay"):
        WeightAverage(_layer(), decay)


def test_a_checkpoint_without_an_average_is_not_resumed_as_if_it_had_one(tmp_path):
    layer = _layer()
    optimizer = paddle.optimizer.AdamW(parameters=layer.parameters())
    path = checkpoint.save(str(tmp_path), 3, layer, optimizer, {"best_metric": None}, keep=1)
    with pytest.raises(UserError, match="no weight average"):
        checkpoint.load(path, layer, optimizer, WeightAverage(layer, 0.9))
    average = WeightAverage(layer, 0.9)
    average.update()
    path = checkpoint.save(str(tmp_path), 4, layer, optimizer, {"best_metric": None}, keep=1, average=average)
    restored = WeightAverage(layer, 0.9)
    state = checkpoint.load(path, layer, optimizer, restored)
    assert restored.updates == 1 and "average_updates" not in state
    np.testing.assert_array_equal(restored.shadow["weight"].numpy(), average.shadow["weight"].numpy())
