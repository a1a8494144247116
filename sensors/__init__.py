"""Watchers that turn new or changed inputs into partitions and runs, and the reselection schedule."""

import dagster as dg

from sensors.schedule import reselect_schedule
from sensors.watchers import model_sensor, pool_sensor, recipe_sensor, target_sensor

# Evaluates the eager automation conditions that carry work downstream of the watchers.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "nag_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

SENSORS = [pool_sensor, target_sensor, model_sensor, recipe_sensor, automation_sensor]

__all__ = ["SENSORS", "automation_sensor", "model_sensor", "pool_sensor", "recipe_sensor", "reselect_schedule", "target_sensor"]
