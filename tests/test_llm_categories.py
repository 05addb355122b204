"""Latent categories: k-means labels, save/load, and the user preference targets g_u."""

from __future__ import annotations

import numpy as np
import pytest

from tslrec.config import CategoryConfig
from tslrec.errors import TslrecError
from tslrec.llm.categories import LatentCategories, fit_categories, preference_target


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated clusters of 6 items each; returns (embeddings, true cluster)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[10.0, 0, 0, 0], [0, 10.0, 0, 0], [0, 0, 10.0, 0]])
    truth = np.repeat(np.arange(3), 6)
    return centers[truth] + 0.1 * rng.standard_normal((18, 4)), truth


def test_preference_targets_hand_computed() -> None:
    labels = np.array([-1, 0, 0, 1, 2])
    sequences = [[1, 2, 3], [4], [], [3, 3, 1, 4]]
    targets = np.stack([preference_target(s, labels, k=3) for s in sequences])
    expected = np.array(
        [[2 / 3, 1 / 3, 0], [0, 0, 1], [0, 0, 0], [1 / 4, 2 / 4, 1 / 4]], dtype=np.float32
    )
    np.testing.assert_allclose(targets, expected, rtol=1e-6)
    assert targets.dtype == np.float32


def test_preference_targets_ignore_padding_and_reject_unknown_items() -> None:
    labels = np.array([-1, 0, 1])
    np.testing.assert_allclose(preference_target([0, 0, 1, 2], labels, 2), [0.5, 0.5])
    with pytest.raises(TslrecError, match="beyond the 2 categorised items"):
        preference_target([3], labels, 2)


def test_fit_categories_recovers_clusters() -> None:
    x, truth = _blobs()
    cats = fit_categories(x, CategoryConfig(k=3, seed=1))
    assert cats.labels.shape == (19,) and cats.labels[0] == -1
    assert cats.counts.tolist() == [6, 6, 6] and cats.centroids.shape == (3, 4)
    # same true cluster <-> same label
    for i in range(18):
        for j in range(18):
            assert (cats.labels[i + 1] == cats.labels[j + 1]) == (truth[i] == truth[j])


def test_fit_categories_is_seeded_and_normalizes() -> None:
    x, _ = _blobs()
    a = fit_categories(x, CategoryConfig(k=4, seed=3, normalize=True))
    b = fit_categories(x, CategoryConfig(k=4, seed=3, normalize=True))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=0.05)


def test_fit_categories_rejects_bad_input() -> None:
    with pytest.raises(TslrecError):
        fit_categories(np.zeros((2, 3)), CategoryConfig(k=3))
    with pytest.raises(TslrecError):
        fit_categories(np.full((5, 3), np.nan), CategoryConfig(k=2))


def test_categories_save_load_round_trip(tmp_path) -> None:
    x, _ = _blobs()
    cats = fit_categories(x, CategoryConfig(k=3, seed=1, normalize=True))
    cats.save(tmp_path / "cats")
    back = LatentCategories.load(tmp_path / "cats")
    np.testing.assert_array_equal(back.labels, cats.labels)
    np.testing.assert_array_equal(back.centroids, cats.centroids)
    np.testing.assert_array_equal(back.counts, cats.counts)
    assert (back.normalize, back.seed, back.k, back.num_items) == (True, 1, 3, 18)
    with pytest.raises(TslrecError):
        LatentCategories.load(tmp_path / "missing")
