"""Observation and action processing between a task (or dataset) and a policy, saved with the checkpoint.

| module           | what                                                                          |
|------------------|-------------------------------------------------------------------------------|
| `keys.py`        | the observation-key grammar (`name`, `name[start:stop]`) and lookup, shared with the dataset importers |
| `pipeline.py`    | `ProcessorsConfig` (the `processors:` config node) and `ObservationProcessors`: key selection, angle -> (sin, cos), JSON for meta.json |
| `normalizers.py` | fitting the policy's observation (min-max or z-score, per key) and action normalisers |
| `task.py`        | `processed_task`: a task whose environments emit the policy's observation      |
"""
