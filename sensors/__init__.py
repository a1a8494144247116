"""Watchers that turn new or changed inputs into partitions and runs, and the reselection schedule."""

from sensors.schedule import reselect_schedule
from sensors.watchers import model_sensor, pool_sensor, target_sensor

SENSORS = [pool_sensor, target_sensor, model_sensor]

__all__ = ["SENSORS", "model_sensor", "pool_sensor", "reselect_schedule", "target_sensor"]
