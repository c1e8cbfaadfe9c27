"""Baselines in the forecast layout: persistence, climatology, climatological ensemble."""

import numpy as np
import pandas as pd
import pytest
import synthetic_data

from minigencast import baselines, metrics

STEP = np.timedelta64(12, "h")


@pytest.fixture(scope="module")
def ds():
    return synthetic_data.dataset(num_times=120, start="2000-01-01T00:00")  # 60 days


def test_persistence_repeats_the_initial_state(ds):
    inits = ds["time"].values[[3, 10]]
    leads = np.arange(1, 4) * STEP
    p = baselines.persistence(ds, inits, leads)
    assert p["geopotential"].dims == ("sample", "init_time", "lead_time", "level", "lat", "lon")
    assert p.sizes["sample"] == 1
    for j in range(3):
        np.testing.assert_array_equal(
            p["temperature"].values[0, 1, j], ds["temperature"].values[10]
        )
    np.testing.assert_array_equal(p["valid_time"].values[1], inits[1] + leads)
    assert "geopotential_at_surface" not in p  # static fields are not forecast
    with pytest.raises(ValueError, match="not in the data"):
        baselines.persistence(ds, [np.datetime64("1999-01-01T00")], leads)


def test_climatology_is_the_mean_of_same_hour_analogues(ds):
    init = ds["time"].values[60]  # 2000-01-31T00
    p = baselines.climatology(ds, [init], [STEP], window_days=3)
    valid = init + STEP  # 12 UTC
    t = pd.DatetimeIndex(ds["time"].values)
    pick = (t.hour == 12) & (np.abs((t - pd.Timestamp(valid)) / pd.Timedelta("1D")) <= 3)
    expected = ds["2m_temperature"].values[pick].mean(0)
    np.testing.assert_allclose(p["2m_temperature"].values[0, 0, 0], expected, rtol=1e-6)


def test_climatological_ensemble_members_and_exclusion(ds):
    init = ds["time"].values[60]
    valid = init + 2 * STEP
    e = baselines.climatological_ensemble(
        ds, [init], [STEP, 2 * STEP], num_members=5, window_days=10, exclude_days=4
    )
    assert e.sizes["sample"] == 5
    # Every member is an actual reference state at the valid hour, at least 4 days away.
    members = e["2m_temperature"].values[:, 0, 1]
    # The allowed analogues, from the definition (pandas, not the package): same hour,
    # within 10 days of the valid time, at least 4 days away from it (no year wrap here).
    t = pd.DatetimeIndex(ds["time"].values)
    days = np.abs((t - pd.Timestamp(valid)) / pd.Timedelta("1D"))
    allowed = (t.hour == pd.Timestamp(valid).hour) & (days <= 10) & (days >= 4)
    ref = ds["2m_temperature"].values[allowed]
    assert 0 < allowed.sum() < len(t)
    for m in members:
        assert any(np.array_equal(m, r) for r in ref)
    np.testing.assert_array_equal(
        baselines.analogue_indices(ds["time"].values, valid, 10, exclude_days=4),
        np.flatnonzero(allowed),
    )
    assert not any(np.array_equal(m, ds["2m_temperature"].sel(time=valid).values) for m in members)
    # A fair CRPS is computable on it (>= 2 members), as for the model.
    crps = metrics.crps(e["2m_temperature"], ds["2m_temperature"], fair=True)
    assert np.isfinite(float(crps)) and float(crps) > 0


def test_no_analogue_is_a_clear_error(ds):
    with pytest.raises(ValueError, match="no reference state"):
        baselines.climatology(ds, [np.datetime64("2000-07-01T00")], [STEP], window_days=5)
