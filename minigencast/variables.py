"""The variable catalogue: GenCast's variables, levels and task configs.

Names are those of DeepMind's GenCast data files (ERA5 / WeatherBench-2 names);
see spec sec. 1.1-1.2 and graphcast/gencast.py@d39de19 (`TASK`).
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
SURFACE_TARGET_VARIABLES = SURFACE_INPUT_VARIABLES[:4] + (PRECIPITATION, SURFACE_INPUT_VARIABLES[4])
ATMOSPHERIC_VARIABLES = (
    "temperature",
    "geopotential",
    "u_component_of_wind",
    "v_component_of_wind",
    "vertical_velocity",
    "specific_humidity",
)
# Generated from the datetime coordinate (and longitude), spec sec. 1.5.
FORCING_VARIABLES = (
    "year_progress_sin",
    "year_progress_cos",
    "day_progress_sin",
    "day_progress_cos",
)
STATIC_VARIABLES = ("geopotential_at_surface", "land_sea_mask")

# WeatherBench-2's 13 levels (hPa), in DeepMind's stacking order.
PRESSURE_LEVELS_WEATHERBENCH_13 = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)

# Loss weight 0.1 instead of 1.0 (spec sec. 3.4).
LOW_WEIGHT_SURFACE_VARIABLES = (
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "sea_surface_temperature",
    PRECIPITATION,
)


def _task(surface_inputs, surface_targets, atmospheric, levels):
    # Imported here: config imports this module for its presets.
    from minigencast.config import TaskConfig

    return TaskConfig(
        input_variables=tuple(surface_inputs) + tuple(atmospheric) + FORCING_VARIABLES + STATIC_VARIABLES,
        target_variables=tuple(surface_targets) + tuple(atmospheric),
        forcing_variables=FORCING_VARIABLES,
        pressure_levels=tuple(levels),
        input_duration="24h",
    )


# GenCast's task, exactly as gencast.TASK (84 target channels with 13 levels).
def gencast_task(levels=PRESSURE_LEVELS_WEATHERBENCH_13):
    return _task(SURFACE_INPUT_VARIABLES, SURFACE_TARGET_VARIABLES, ATMOSPHERIC_VARIABLES, levels)


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


def toy_planet_task(levels=TOY_PLANET_LEVELS):
    return _task(
        TOY_PLANET_SURFACE_VARIABLES,
        TOY_PLANET_SURFACE_VARIABLES,
        TOY_PLANET_ATMOSPHERIC_VARIABLES,
        levels,
    )


def __getattr__(name):
    # Module-level lazy constants: variables.GENCAST_TASK, variables.TOY_PLANET_TASK.
    if name == "GENCAST_TASK":
        return gencast_task()
    if name == "TOY_PLANET_TASK":
        return toy_planet_task()
    raise AttributeError(name)
