import torch

from tslrec.config import TrainConfig
from tslrec.training.losses import full_softmax_ce, sampled_softmax


def test_chunked_cross_entropy_equals_the_direct_one_in_value_and_gradient():
    torch.manual_seed(0)
    table = torch.randn(31, 8, requires_grad=True)
    hidden = torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(1, 31, (50,))
    direct = full_softmax_ce(hidden, targets, table, TrainConfig(ce_chunk_size=1000))
    g_direct = torch.autograd.grad(direct, [hidden, table])
    chunked = full_softmax_ce(hidden, targets, table, TrainConfig(ce_chunk_size=7))
    g_chunked = torch.autograd.grad(chunked, [hidden, table])
    expected = torch.nn.functional.cross_entropy(hidden @ table[1:].T, targets - 1)
    assert torch.allclose(direct, expected) and torch.allclose(chunked, expected)
    for a, b in zip(g_direct, g_chunked, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_sampled_softmax_ignores_negatives_equal_to_the_target():
    # a catalogue of one real item: every sampled negative is the target itself
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    loss = sampled_softmax(
        torch.tensor([[3.0, 0.0]]), torch.tensor([1]), table, TrainConfig(num_negatives=5)
    )
    assert torch.isclose(loss, torch.tensor(0.0))
