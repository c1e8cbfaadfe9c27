"""The variable catalogue: names, metadata and task configs."""

import numpy as np
import xarray

from minigencast import config, variables


def test_gencast_task_has_84_target_channels():
    task = config.GENCAST_TASK
    assert variables.num_target_channels(task) == 84
    assert len(task.pressure_levels) == 13
    assert variables.PRECIPITATION in task.target_variables
    assert variables.PRECIPITATION not in task.input_variables


def test_toy_planet_task_is_reduced():
    task = config.TOY_PLANET_TASK
    assert variables.num_target_channels(task) == 4 + 4 * 3
    assert task.pressure_levels == (250, 500, 850)
    assert "specific_humidity" not in task.input_variables
    assert set(task.forcing_variables) == set(variables.FORCING_VARIABLES)


def test_every_task_variable_has_metadata():
    task = config.GENCAST_TASK
    for name in set(task.input_variables) | set(task.target_variables):
        units, std, long, _ = variables.METADATA[name]
        assert units and long, name
    assert variables.units("geopotential") == "m2 s-2"
    assert variables.standard_name("mean_sea_level_pressure") == "air_pressure_at_mean_sea_level"


def test_era5_short_names_map_to_gencast_names():
    assert variables.ERA5_NAMES["t2m"] == "2m_temperature"
    assert variables.ERA5_NAMES["msl"] == "mean_sea_level_pressure"
    assert variables.ERA5_NAMES["q"] == "specific_humidity"
    # `z` is ambiguous (pressure-level vs surface): resolved by the data layer.
    assert "z" not in variables.ERA5_NAMES


def test_add_cf_attrs():
    ds = xarray.Dataset(
        {"temperature": (("level", "lat"), np.zeros((1, 2)))},
        coords={"level": [500], "lat": [0.0, 1.0]},
    )
    out = variables.add_cf_attrs(ds)
    assert out["temperature"].attrs["units"] == "K"
    assert out["temperature"].attrs["standard_name"] == "air_temperature"
    assert out["lat"].attrs["units"] == "degrees_north"
    assert "units" not in ds["temperature"].attrs  # input untouched
