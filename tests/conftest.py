"""Shared test fixtures: tiny random models of every family (seeded, built in milliseconds) and
synthetic pictures. Each builder is a fixture returning a factory, so a test asks for the model it
needs by name and chooses its seed:

    def test_round_trip(tiny_hyperprior, smooth_image):
        model = tiny_hyperprior(seed=1)

The models' analysis gains are raised so that their latents span many symbols: a round trip through
them codes more than zeros (tests assert that too).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.models.m2t import M2T, M2TConfig
from codec.models.vct import VCT, VCTConfig
from codec.pipeline import hyperprior, m2t, vct

# The user's weights folder (codec.settings.user_weights_dir) of every test and of the processes they
# start: an empty folder of this run, never the machine's ~/.local/share/codec.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="codec-test-xdg-")

GAIN = 300.0  # the last analysis layer's weights times this: latents large enough to need several symbols


def _autoencoder(config: HyperpriorConfig, gain: float) -> MeanScaleHyperprior:
    ae = MeanScaleHyperprior(config)
    with torch.no_grad():
        ae.g_a[-1].weight.mul_(gain)
    return ae


def make_tiny_hyperprior(seed: int = 0, model_id: str = "test-tiny", gain: float = GAIN) -> hyperprior.HyperpriorModel:
    torch.manual_seed(seed)
    return hyperprior.from_module(_autoencoder(HyperpriorConfig.tiny(), gain), model_id)


def make_tiny_m2t(seed: int = 0, side: bool = False) -> m2t.M2TModel:
    torch.manual_seed(seed)
    ae = _autoencoder(HyperpriorConfig(N=8, M=12, levels=(0.002, 0.01, 0.05)), GAIN)
    tf = M2T(M2TConfig(channels=12, width=16, layers=2, heads=2, patch=4, steps=4, side=side))
    with torch.no_grad():
        tf.head.weight.normal_(0, 0.2)
    return m2t.from_modules(ae, tf, "tiny-m2t")


def make_tiny_vct(seed: int = 0, side: bool = True, state: int = 0) -> vct.VCTModel:
    torch.manual_seed(seed)
    hp = hyperprior.from_module(_autoencoder(HyperpriorConfig(N=8, M=12), GAIN), "tiny-hp")
    tf = VCT(VCTConfig(channels=12, width=16, heads=2, enc_layers=1, dec_layers=2, side=side, zprior=side,
                       z_channels=8, zprior_width=8, state=state))
    with torch.no_grad():
        tf.head.weight.normal_(0, 0.05)
        if side:
            tf.zprior.net[-1].weight.normal_(0, 0.05)
        if state:  # a state that matters (a fresh model's embedding is zero)
            tf.embed_state.weight.normal_(0, 0.5)
    return vct.from_modules(hp, tf, "tiny-vct-state" if state else "tiny-vct")


def make_smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour pattern with a little noise: (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 9 + c) * np.cos(yy / 13 - c) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_hyperprior():
    return make_tiny_hyperprior


@pytest.fixture
def tiny_m2t():
    return make_tiny_m2t


@pytest.fixture
def tiny_vct():
    return make_tiny_vct


@pytest.fixture
def smooth_image():
    return make_smooth_image
