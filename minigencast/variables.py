"""The variable catalogue: GenCast's variables, levels, units and names.

Names are those of DeepMind's GenCast data files (ERA5 / WeatherBench-2 names);
see docs/design.md §1.1-1.2 and graphcast/gencast.py@d39de19 (`TASK`).
"""

from __future__ import annotations

# Surface variables that are both inputs and targets.
SURFACE_INPUT_VARIABLES = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_v_component_of_wind",
    "10m_u_component_of_wind",
    "sea_surface_temperature",
)
# Predicted but never an input (a 12 h accumulation).
PRECIPITATION = "total_precipitation_12hr"
# NaN over land; filled with its minimum and re-inserted (docs/design.md §2.2).
SST = "sea_surface_temperature"
SURFACE_TARGET_VARIABLES = SURFACE_INPUT_VARIABLES[:4] + (PRECIPITATION, SURFACE_INPUT_VARIABLES[4])
ATMOSPHERIC_VARIABLES = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
# Generated from the datetime coordinate (and longitude), docs/design.md §1.5.
FORCING_VARIABLES = (
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)
STATIC_VARIABLES = ("geopotential_at_surface", "land_sea_mask")

# WeatherBench-2's 13 levels (hPa), in DeepMind's stacking order.
PRESSURE_LEVELS_WEATHERBENCH_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)

# Loss weight 0.1 instead of 1.0 (docs/design.md §3.4).
LOW_WEIGHT_SURFACE_VARIABLES = (
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "sea_surface_temperature",
    PRECIPITATION,
)


# The embedded toy planet (dry Held-Suarez dynamics): no humidity, vertical velocity,
# precipitation or SST. A reduced variable set, first-class everywhere.
TOY_PLANET_SURFACE_VARIABLES = (
    "2m_temperature",
    "mean_sea_level_pressure",
    "10m_v_component_of_wind",
    "10m_u_component_of_wind",
)
TOY_PLANET_ATMOSPHERIC_VARIABLES = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
)
TOY_PLANET_LEVELS = (250, 500, 850)


# --------------------------------------------------------------------------- metadata
# name: (units, CF standard name, long name, ERA5 short name).
# Standard names from the CF standard-name table (v84); ERA5 short names from the
# ECMWF parameter database. WeatherBench-2 ERA5 zarr stores use the GenCast names
# themselves, except precipitation (see WEATHERBENCH2_NAMES).
METADATA = {
    "2m_temperature": ("K", "air_temperature", "2 metre temperature", "t2m"),
    "mean_sea_level_pressure": (
        "Pa",
        "air_pressure_at_mean_sea_level",
        "Mean sea level pressure",
        "msl",
    ),
    "10m_u_component_of_wind": (
        "m s-1",
        "eastward_wind",
        "10 metre U wind component",
        "u10",
    ),
    "10m_v_component_of_wind": (
        "m s-1",
        "northward_wind",
        "10 metre V wind component",
        "v10",
    ),
    "sea_surface_temperature": ("K", "sea_surface_temperature", "Sea surface temperature", "sst"),
    PRECIPITATION: (
        "m",
        "lwe_thickness_of_precipitation_amount",
        "Total precipitation accumulated over the 12 h ending at the valid time",
        "tp",
    ),
    "temperature": ("K", "air_temperature", "Temperature", "t"),
    "geopotential": ("m2 s-2", "geopotential", "Geopotential", "z"),
    "u_component_of_wind": ("m s-1", "eastward_wind", "U component of wind", "u"),
    "v_component_of_wind": ("m s-1", "northward_wind", "V component of wind", "v"),
    "vertical_velocity": (
        "Pa s-1",
        "lagrangian_tendency_of_air_pressure",
        "Vertical velocity (omega)",
        "w",
    ),
    "specific_humidity": ("kg kg-1", "specific_humidity", "Specific humidity", "q"),
    "geopotential_at_surface": (
        "m2 s-2",
        "surface_geopotential",
        "Geopotential at the surface (orography x g)",
        "z",
    ),
    "land_sea_mask": ("1", "land_binary_mask", "Land-sea mask (land fraction)", "lsm"),
    "year_progress_sin": ("1", "", "sin(2 pi year progress)", ""),
    "year_progress_cos": ("1", "", "cos(2 pi year progress)", ""),
    "day_progress_sin": ("1", "", "sin(2 pi local day progress)", ""),
    "day_progress_cos": ("1", "", "cos(2 pi local day progress)", ""),
}

# WeatherBench-2 ERA5 zarr name -> GenCast name, where they differ. WB2 stores
# 6-hourly accumulations; the data layer sums two of them into the 12 h total.
WEATHERBENCH2_NAMES = {
    "total_precipitation_6hr": "total_precipitation_6hr",
    "total_precipitation_12hr": PRECIPITATION,
}
# ERA5 short name (as in CDS NetCDF downloads) -> GenCast name. `z` is ambiguous
# (pressure-level geopotential vs surface geopotential): resolved by whether the
# variable has a level dimension.
ERA5_NAMES = {meta[3]: name for name, meta in METADATA.items() if meta[3] and meta[3] != "z"}
ERA5_NAMES.update({"tp": "total_precipitation", "t2m": "2m_temperature", "t": "temperature"})

# Physical ranges used as plausibility checks (and for "did you give geopotential
# height instead of geopotential?" hints): name -> (min, max) of typical values.
PLAUSIBLE_RANGES = {
    "2m_temperature": (150.0, 350.0),
    "temperature": (150.0, 350.0),
    "sea_surface_temperature": (250.0, 320.0),
    "mean_sea_level_pressure": (8.5e4, 1.1e5),
    "geopotential": (-1e4, 2.1e5),
    "geopotential_at_surface": (-5e3, 6e4),
    "10m_u_component_of_wind": (-80.0, 80.0),
    "10m_v_component_of_wind": (-80.0, 80.0),
    "u_component_of_wind": (-150.0, 150.0),
    "v_component_of_wind": (-150.0, 150.0),
    "vertical_velocity": (-20.0, 20.0),
    "specific_humidity": (-1e-3, 0.05),
    PRECIPITATION: (-1e-3, 0.5),
    "land_sea_mask": (0.0, 1.0),
}


def units(name: str) -> str:
    """Units of a GenCast variable (UDUNITS string), e.g. units("geopotential") == "m2 s-2"."""
    return METADATA[name][0]


def standard_name(name: str) -> str:
    """CF standard name ('' for the generated progress features)."""
    return METADATA[name][1]


def long_name(name: str) -> str:
    return METADATA[name][2]


def era5_short_name(name: str) -> str:
    return METADATA[name][3]


def num_target_channels(task) -> int:
    """Number of predicted channels of a TaskConfig (84 for GenCast's task)."""
    n_levels = len(task.pressure_levels)
    return sum(n_levels if v in ATMOSPHERIC_VARIABLES else 1 for v in task.target_variables)


def add_cf_attrs(ds):
    """Return `ds` with units / standard_name / long_name attrs on known variables."""
    ds = ds.copy()
    for name in ds.data_vars:
        if name in METADATA:
            u, std, long, _ = METADATA[name]
            attrs = {"units": u, "long_name": long}
            if std:
                attrs["standard_name"] = std
            ds[name].attrs.update(attrs)
    coord_attrs = {
        "lat": {"units": "degrees_north", "standard_name": "latitude", "long_name": "Latitude"},
        "lon": {"units": "degrees_east", "standard_name": "longitude", "long_name": "Longitude"},
        "level": {"units": "hPa", "standard_name": "air_pressure", "long_name": "Pressure level"},
    }
    for c, attrs in coord_attrs.items():
        if c in ds.coords:
            ds[c].attrs.update(attrs)
    return ds
