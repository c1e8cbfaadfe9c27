"""stacking: DeepMind's channel order (docs/design.md §1.4), the Dataset <-> array round trip."""

import numpy as np
import pandas as pd
import pytest
import xarray

from minigencast import channel_order, config, stacking


def test_gencast_input_layout_matches_spec_table():
    ch = channel_order.input_channels(config.GENCAST_TASK)
    assert len(ch) == 176
    assert ch[0] == channel_order.Channel("10m_u_component_of_wind", None, 0)
    assert ch[6].variable == "day_progress_cos"
    assert ch[10] == channel_order.Channel("geopotential", 50, 0)
    assert ch[22] == channel_order.Channel("geopotential", 1000, 0)
    assert ch[23] == channel_order.Channel("geopotential", 50, 1)
    assert ch[36] == channel_order.Channel("geopotential_at_surface")
    assert ch[37] == channel_order.Channel("land_sea_mask")
    assert ch[38].variable == "mean_sea_level_pressure"
    assert [c.variable for c in ch[172:]] == ["year_progress_cos"] * 2 + ["year_progress_sin"] * 2


def test_gencast_target_and_interleaved_layout_matches_spec_table():
    task = config.GENCAST_TASK
    targets = channel_order.target_channels(task)
    assert len(targets) == 84
    assert targets[3] == channel_order.Channel("geopotential", 50, 0)
    assert targets[16].variable == "mean_sea_level_pressure"
    assert targets[44].variable == "total_precipitation_12hr"
    assert targets[71] == channel_order.Channel("vertical_velocity", 50, 0)
    block = channel_order.forcing_channels(task) + targets
    order = [block[i] for i in channel_order.interleave_index(task)]
    # Spec table: 176 + offset.
    assert order[0].variable == "10m_u_component_of_wind"
    assert [c.variable for c in order[3:5]] == ["day_progress_cos", "day_progress_sin"]
    assert order[5] == channel_order.Channel("geopotential", 50, 0)
    assert order[46].variable == "total_precipitation_12hr"  # index 222
    assert [c.variable for c in order[86:]] == ["year_progress_cos", "year_progress_sin"]


def _dataset(batch=True):
    rng = np.random.default_rng(0)
    lat, lon, levels = np.linspace(-90, 90, 5), np.arange(8) * 45.0, [500, 850]
    b = {"batch": 2} if batch else {}
    lead = tuple(b)
    shape = tuple(b.values())
    ds = xarray.Dataset(
        {
            "temperature": (
                lead + ("time", "level", "lat", "lon"),
                rng.normal(size=shape + (2, 2, 5, 8)),
            ),
            "2m_temperature": (lead + ("time", "lat", "lon"), rng.normal(size=shape + (2, 5, 8))),
            "land_sea_mask": (("lat", "lon"), rng.normal(size=(5, 8))),
            "year_progress_sin": (lead + ("time",), rng.normal(size=shape + (2,))),
            "day_progress_cos": (lead + ("time", "lon"), rng.normal(size=shape + (2, 8))),
        },
        coords={"lat": lat, "lon": lon, "level": levels, "time": pd.to_timedelta([-12, 0], "h")},
    )
    return ds.astype(np.float32)


@pytest.mark.parametrize("batch", [True, False])
def test_round_trip_is_exact(batch):
    ds = _dataset(batch)
    array, channels = stacking.dataset_to_array(ds)
    assert array.shape == ((2,) if batch else ()) + (5, 8, 2 + 2 + 1 + 4 + 2)
    assert [c.variable for c in channels][:2] == ["2m_temperature"] * 2
    assert channels[4] == channel_order.Channel("land_sea_mask")
    assert channels[5] == channel_order.Channel("temperature", 500, 0)
    assert channels[6] == channel_order.Channel("temperature", 850, 0)
    xarray.testing.assert_identical(stacking.array_to_dataset(array, ds), ds)
    # Broadcast variables are constant over the grid.
    i = [c.variable for c in channels].index("year_progress_sin")
    assert np.all(array[..., i] == array[..., :1, :1, i])


def test_channel_vector_selects_levels_by_value():
    stats = xarray.Dataset(
        {"temperature": ("level", [1.0, 2.0, 3.0]), "land_sea_mask": ((), 7.0)},
        coords={"level": [250, 500, 850]},
    )
    channels = [
        channel_order.Channel("temperature", 850, 0),
        channel_order.Channel("temperature", 500, 1),
        channel_order.Channel("land_sea_mask"),
    ]
    np.testing.assert_array_equal(stacking.channel_vector(channels, stats), [3.0, 2.0, 7.0])
    with pytest.raises(KeyError):
        stacking.channel_vector([channel_order.Channel("geopotential", 500, 0)], stats)


def test_forcings_without_lat_round_trip():
    ds = _dataset()[["year_progress_sin", "day_progress_cos"]].isel(time=[1])
    array, channels = stacking.dataset_to_array(ds, grid=(5, 8))
    assert array.shape == (2, 5, 8, 2)
    assert [c.variable for c in channels] == ["day_progress_cos", "year_progress_sin"]
    xarray.testing.assert_identical(stacking.array_to_dataset(array, ds), ds)
