import dataclasses

import pytest

from minigencast import config


def test_presets_are_frozen_and_named():
    for name in config.PRESETS:
        cfg = config.preset(name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.grid = (1, 1)


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="gencast_1p0deg_mini"):
        config.preset("nope")


def test_gencast_task_matches_deepmind():
    task = config.GENCAST_TASK
    assert len(task.input_variables) == 17
    assert task.target_variables[:6] == (
        "2m_temperature",
        "mean_sea_level_pressure",
        "10m_v_component_of_wind",
        "10m_u_component_of_wind",
        "total_precipitation_12hr",
        "sea_surface_temperature",
    )
    assert task.pressure_levels == (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
    assert "total_precipitation_12hr" not in task.input_variables


def test_sampler_defaults_are_deepmind_defaults():
    s = config.SamplerConfig()
    assert (s.max_noise_level, s.min_noise_level, s.num_noise_levels, s.rho) == (
        80.0,
        0.03,
        20,
        7.0,
    )
    assert (s.stochastic_churn_rate, s.churn_min_noise_level) == (2.5, 0.75)
    assert s.noise_level_inflation_factor == 1.05
