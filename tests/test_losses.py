import pytest
import torch

from tslrec.config import TrainConfig
from tslrec.training.losses import full_softmax_ce, sampled_softmax


@pytest.mark.parametrize("chunk_size", [1000, 7])
def test_cross_entropy_matches_torch_in_value_and_gradient(chunk_size):
    torch.manual_seed(0)
    table = torch.randn(31, 8, requires_grad=True)
    hidden = torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(1, 31, (50,))
    ours = full_softmax_ce(hidden, targets, table, TrainConfig(ce_chunk_size=chunk_size))
    expected = torch.nn.functional.cross_entropy(hidden @ table[1:].T, targets - 1)
    assert torch.allclose(ours, expected)
    # scaled by 3 so a backward that ignored the incoming gradient would fail
    for a, b in zip(
        torch.autograd.grad(3 * ours, [hidden, table]),
        torch.autograd.grad(3 * expected, [hidden, table]),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-6)


def test_cross_entropy_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    table = torch.randn(200, 16, requires_grad=True)
    hidden = torch.randn(300, 16, requires_grad=True)
    targets = torch.randint(1, 200, (300,))
    cfg = TrainConfig(ce_chunk_size=64)
    exact = full_softmax_ce(hidden, targets, table, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = full_softmax_ce(hidden, targets, table, cfg)
    grads = torch.autograd.grad(fast, [hidden, table])
    assert fast.dtype == torch.float32 and abs(fast.item() - exact.item()) < 0.05
    assert [g.dtype for g in grads] == [torch.float32, torch.float32]


def test_sampled_softmax_ignores_negatives_equal_to_the_target():
    # a catalogue of one real item: every sampled negative is the target itself
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    loss = sampled_softmax(
        torch.tensor([[3.0, 0.0]]), torch.tensor([1]), table, TrainConfig(num_negatives=5)
    )
    assert torch.isclose(loss, torch.tensor(0.0))
