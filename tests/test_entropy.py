"""Entropy models (codec/entropy): densities, frozen tables, snapping to the grid, and the tie between
the rate that training estimates and the bytes the coder writes.

Tolerance of that tie: the coded size is within 1.5% (plus 8 bytes of final-word overhead) of the
training-time estimate -sum log2 P(symbol) for each distribution we code. What separates them is
the coder's 24-bit probability quantisation and, for the Gaussian, the snapping of each scale to the
smallest table entry not below it (at most 13% wider: a few thousandths of a bit per symbol).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.entropy.factorized import FactorizedDensity, FactorizedTables
from codec.entropy.gaussian import GaussianConditional, gaussian_likelihood, rd_round, scale_table, snap_scales
from codec.entropy.hyperprior import HyperpriorEntropy, tables_of

RATE_TOLERANCE = 0.015
FINAL_WORDS = 8  # bytes


def _discrete_gaussian(rng, scale: np.ndarray) -> np.ndarray:
    return np.rint(rng.normal(0.0, scale)).astype(np.int32)


@pytest.mark.parametrize("spread", [(0.2, 1.0), (0.5, 8.0), (4.0, 60.0)])
def test_gaussian_coded_bytes_match_the_training_rate_estimate(spread):
    rng = np.random.default_rng(0)
    scale = np.exp(rng.uniform(np.log(spread[0]), np.log(spread[1]), 20000))
    symbols = _discrete_gaussian(rng, scale)
    gc = GaussianConditional.default()
    estimate = GaussianConditional.bits(torch.from_numpy(symbols), torch.from_numpy(scale))  # unsnapped, as trained
    coded = 8 * len(gc.compress(symbols, gc.index(torch.from_numpy(scale))))
    assert estimate <= coded <= estimate * (1 + RATE_TOLERANCE) + 8 * FINAL_WORDS
    np.testing.assert_array_equal(gc.decompress(gc.compress(symbols, gc.index(torch.from_numpy(scale))),
                                                gc.index(torch.from_numpy(scale))), symbols)


def test_factorized_coded_bytes_match_the_training_rate_estimate():
    torch.manual_seed(0)
    density = FactorizedDensity(4)
    with torch.no_grad():  # a narrower, off-centre density than at initialisation
        density.quantiles[:, 0, 1] = torch.tensor([0.3, -1.2, 0.0, 2.4])
        for m in density.matrices:
            m.add_(0.7)
    tables = FactorizedTables.build(density)
    rng = np.random.default_rng(1)
    pmf = tables.pmf.numpy()
    inner = pmf[:, 1:-1] / pmf[:, 1:-1].sum(1, keepdims=True)  # symbols inside the table: no escapes
    symbols = np.stack([rng.choice(inner.shape[1], 6000, p=p) + 1 for p in inner]) + tables.offsets_np[:, None]
    z_hat = torch.from_numpy(symbols.astype(np.float32))[None, :, :, None] + density.medians.view(1, -1, 1, 1)
    with torch.no_grad():
        estimate = float(-torch.log2(density.likelihood(z_hat)).sum())
    data = tables.compress(symbols.astype(np.int32))
    assert estimate <= 8 * len(data) * (1 + RATE_TOLERANCE) and 8 * len(data) <= estimate * (1 + RATE_TOLERANCE) + 8 * FINAL_WORDS
    np.testing.assert_array_equal(tables.decompress(data, symbols.shape), symbols)


def test_hyperprior_entropy_codes_z_and_gives_both_sides_the_same_parameters():
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    torch.manual_seed(0)
    module = MeanScaleHyperprior(HyperpriorConfig.tiny()).eval()
    entropy = HyperpriorEntropy.of(module.z_density, module.h_s, tables_of(module.z_density))
    z = torch.randn(1, module.config.N, 3, 5) * 4
    z_sym = entropy.z_symbols(z)
    assert np.count_nonzero(z_sym) > z_sym.size // 2
    decoded = entropy.decompress_z(entropy.compress_z(z_sym), 3, 5)
    np.testing.assert_array_equal(decoded, z_sym)
    (m1, s1), (m2, s2) = entropy.parameters(z_sym), entropy.parameters(decoded.copy())
    assert torch.equal(m1, m2) and torch.equal(s1, s2)
    assert torch.equal(m1 * 64, torch.round(m1 * 64))  # the means sit on the 1/64 grid
    index = entropy.scale_index(s1, torch.full((module.config.M,), 2.0, dtype=torch.float64))
    assert index.shape == tuple(m1.shape[1:]) and index.dtype == np.int64


def test_factorized_table_rows_are_normalised_with_escape_bins():
    torch.manual_seed(0)
    density = FactorizedDensity(4)
    offsets, pmf = density.pmf_table()
    assert pmf.shape[0] == 4 and pmf.shape[1] >= 3
    np.testing.assert_allclose(pmf.sum(1).numpy(), 1.0, rtol=1e-12)
    assert (pmf > 0).all()
    assert (offsets == -(pmf.shape[1] - 1) // 2).all()


def test_gaussian_bins_sum_to_one():
    r = torch.arange(-200, 201, dtype=torch.float64)
    for s in (0.11, 1.0, 7.3, 40.0):
        total = gaussian_likelihood(r, torch.full_like(r, s)).sum().item()
        assert abs(total - 1.0) < 1e-6


def test_scale_snapping_picks_the_smallest_table_entry_not_below():
    table = scale_table()
    s = torch.tensor([0.01, 0.11, 0.5, 3.0, 1e6], dtype=torch.float64)
    idx = snap_scales(s, table)
    assert idx[0] == 0 and idx[-1] == len(table) - 1
    for v, i in zip(s[1:-1], idx[1:-1]):
        assert table[i] >= v - 1e-12 and (i == 0 or table[i - 1] < v)


def test_factorized_table_is_on_its_grid_and_rebuilt_identically():
    torch.manual_seed(0)
    density = FactorizedDensity(3)
    a, b = FactorizedTables.build(density), FactorizedTables.build(density)
    assert torch.equal(a.pmf, b.pmf) and torch.equal(a.offsets, b.offsets)
    assert torch.equal(a.pmf * 2.0**40, torch.round(a.pmf * 2.0**40))


# --- encoder-side rate-distortion rounding ---------------------------------------------------


def test_rd_round_without_lambda_is_plain_rounding():
    r = torch.linspace(-6.3, 6.3, 1001, dtype=torch.float64)
    assert torch.equal(rd_round(r, torch.full_like(r, 0.5), 0.0), torch.round(r))


def test_rd_round_moves_toward_zero_only_where_the_bits_saved_pay_for_the_error():
    r = torch.tensor([0.6, -0.6, 0.6, 1.55, 0.4, 3.1], dtype=torch.float64)
    scale = torch.tensor([0.2, 0.2, 8.0, 1.0, 0.2, 0.2], dtype=torch.float64)
    s = rd_round(r, scale, 0.2)
    # a confident scale makes 1 costly: 0.6 -> 0; a wide one costs about the same for 0 and 1: stays 1;
    # 1.55 at scale 1: 2 costs two bits more than 1; never more than one step from round(r), never away from zero, never past zero
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 3.0]  # 3.1: both far in the tail, the same bits
    rng = np.random.default_rng(0)
    r = torch.from_numpy(rng.normal(0, 3, 5000))
    scale = torch.from_numpy(rng.uniform(0.11, 10, 5000))
    s, s0 = rd_round(r, scale, 0.3), torch.round(r)
    assert bool(((s0 - s).abs() <= 1).all()) and bool((s.abs() <= s0.abs()).all()) and bool((s * s0 >= 0).all())
    assert 0 < int((s != s0).sum()) < 5000
