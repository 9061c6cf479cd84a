"""mrl_dna/embed/options.py: EmbedOptions, the one place where the window and stride defaults are resolved."""

from __future__ import annotations

import pytest

from mrl_dna.embed import EmbedOptions
from mrl_dna.errors import ConfigError


def test_window_and_stride_default_to_the_models_and_a_given_window_is_its_own_stride(tiny_model):
    info = tiny_model.info  # window 256, stride 256
    assert (EmbedOptions().window_config(info).size, EmbedOptions().window_config(info).stride) == (256, 256)
    assert EmbedOptions(window=100).window_config(info).stride == 100
    cfg = EmbedOptions(window=100, stride=40, max_n_fraction=0.2).window_config(info)
    assert (cfg.size, cfg.stride, cfg.max_n_fraction) == (100, 40, 0.2)
    assert EmbedOptions(stride=64).window_config(info).size == 256


def test_a_stride_beyond_the_window_is_refused_before_any_work(tiny_model):
    with pytest.raises(ConfigError, match="window stride 300 exceeds window size 256"):
        EmbedOptions(stride=300).window_config(tiny_model.info)
