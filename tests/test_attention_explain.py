"""The attention explanation's pure functions, on known numbers: the weight each token
receives, attention rollout, token sums of image attributions, and the agreement measure."""
from __future__ import annotations

import numpy as np
import pytest

from dlrun.attention_maps import received
from dlrun.explain.attention import agreement, image_tokens, rollout, spearman, token_pixels


def _weights(rows: list) -> np.ndarray:
    """(1 row, 1 head, tokens, tokens) from one attention matrix."""
    return np.asarray(rows, dtype="float64")[None, None]


def test_received_averages_over_heads_and_real_queries_only() -> None:
    head_a = [[1, 0, 0], [1, 0, 0], [0, 0, 0]]        # token 3 is padding: its query row is empty
    head_b = [[0, 1, 0], [0, 1, 0], [0, 0, 0]]
    scores = np.asarray([head_a, head_b], dtype="float64")[None]
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(received(scores, mask), [[0.5, 0.5, 0.0]])


def test_rollout_of_identity_attention_is_uniform() -> None:
    eye = _weights(np.eye(4))
    np.testing.assert_allclose(rollout([eye, eye], np.ones((1, 4), bool)), [[0.25] * 4])


def test_rollout_of_one_layer_attending_to_the_first_token() -> None:
    # every query attends to token 0: half of each row flows there, half stays (residual)
    first = _weights([[1, 0, 0, 0]] * 4)
    expected = [0.5 + 0.5 / 4, 0.5 / 4, 0.5 / 4, 0.5 / 4]
    np.testing.assert_allclose(rollout([first], np.ones((1, 4), bool)), [expected])


def test_rollout_compounds_over_layers_and_ignores_padding() -> None:
    first = _weights([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    mask = np.array([[True, True, False]])
    one = rollout([first], mask)
    two = rollout([first, first], mask)
    np.testing.assert_allclose(one, [[0.75, 0.25, 0.0]])
    np.testing.assert_allclose(two, [[0.875, 0.125, 0.0]])  # token 1 keeps half of its half
    assert two[0, 0] > one[0, 0]


def test_image_tokens_sum_rows_or_patches() -> None:
    values = np.arange(16, dtype="float64").reshape(1, 4, 4, 1)
    np.testing.assert_allclose(image_tokens(values, None), [[6, 22, 38, 54]])
    np.testing.assert_allclose(image_tokens(values, (2, 2)), [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13,
                                                              10 + 11 + 14 + 15]])
    spread = token_pixels(np.array([[1.0, 2.0, 3.0, 4.0]]), (4, 4), (2, 2))
    assert spread.shape == (1, 4, 4) and spread[0, 0, 0] == 1 and spread[0, 0, 3] == 2 and spread[0, 3, 0] == 3
    np.testing.assert_allclose(token_pixels(np.array([[1.0, 2.0]]), (2, 3), None), [[[1, 1, 1], [2, 2, 2]]])


def test_agreement_ranks_attention_against_absolute_attributions() -> None:
    attention = np.array([[0.6, 0.3, 0.1, 0.0], [0.1, 0.2, 0.7, 0.0]])
    attributions = np.array([[-0.9, 0.2, 0.05, 0.0], [0.5, 0.3, 0.1, 0.0]])
    mask = np.array([[True, True, True, False], [True, True, True, False]])
    rhos, same = agreement(attention, attributions, mask)
    assert rhos == pytest.approx([1.0, -1.0])
    assert same == [True, False]


def test_spearman_is_nan_for_constant_input() -> None:
    assert np.isnan(spearman(np.ones(3), np.arange(3)))
    assert spearman(np.arange(4), np.arange(4) ** 2) == pytest.approx(1.0)
