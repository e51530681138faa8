"""The statsd_exporter mapping: Airflow 3.3's StatsD names to Prometheus metrics with labels.

Airflow sends most metrics twice (captured from real 3.3.2 processes, docs/observability.md):

* the tagged form, ``ti.finish,dag_id=etl,task_id=load,state=success`` (``statsd_influxdb_enabled``):
  the exporter reads the tags as labels. These are mapped here, to ``airflow_*`` names (counters with
  ``_total``, timers as histograms in seconds);
* a legacy form with the same values inside the name, ``ti.finish.etl.load.success``: one metric name
  per DAG, task or pool. These are dropped, so the number of metric names stays fixed however many
  DAGs there are.

A metric named nowhere here still reaches Prometheus under the exporter's default name (dots to
underscores, ``airflow_`` first), so a metric a later Airflow adds is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PREFIX = "airflow"

Kind = Literal["counter", "gauge", "timer"]

# Seconds. Task and DAG run durations span seconds to hours; the scheduler's own loops are sub-second.
LONG_BUCKETS = [1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0]
SHORT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]


@dataclass(frozen=True)
class Mapped:
    statsd: str
    """Airflow's name, without the prefix; ``*`` matches one dot-separated part."""
    kind: Kind
    name: str
    """The Prometheus name, without ``airflow_`` and without ``_total``/``_seconds``."""
    labels: tuple[str, ...] = ()
    """The tags Airflow sends with it (they become labels as they are)."""
    from_name: tuple[tuple[str, int], ...] = ()
    """Labels taken from the parts ``*`` matched: (label, 1-based match number)."""
    buckets: tuple[float, ...] = ()

    @property
    def prometheus_name(self) -> str:
        suffix = {"counter": "_total", "gauge": "", "timer": "_seconds"}[self.kind]
        return f"{PREFIX}_{self.name}{suffix}"

    @property
    def all_labels(self) -> tuple[str, ...]:
        return (*self.labels, *(label for label, _ in self.from_name))


def counter(statsd: str, *labels: str, name: str | None = None) -> Mapped:
    return Mapped(statsd, "counter", name or statsd.replace(".", "_"), labels)


def gauge(statsd: str, *labels: str, name: str | None = None) -> Mapped:
    return Mapped(statsd, "gauge", name or statsd.replace(".", "_"), labels)


def timer(statsd: str, *labels: str, name: str | None = None, long: bool = False) -> Mapped:
    buckets = tuple(LONG_BUCKETS if long else SHORT_BUCKETS)
    return Mapped(statsd, "timer", name or statsd.replace(".", "_").replace("-", "_"), labels, buckets=buckets)


DAG_TASK = ("dag_id", "task_id")
TI_STATE_GAUGES = ("scheduled", "queued", "running", "deferred", "awaiting_input")
"""The states the scheduler's ti.<state> gauges count (Airflow 3.3's scheduler_job_runner)."""
POOL = ("pool_name",)
EXECUTOR = ("executor_class_name", "status")

METRICS: tuple[Mapped, ...] = (
    # heartbeats: one increment per loop of each long-running component
    counter("scheduler_heartbeat"),
    counter("dag_processor_heartbeat"),
    counter("triggerer_heartbeat"),
    counter("job_start"),
    counter("job_end"),
    # task instances
    counter("ti.start", *DAG_TASK),
    counter("ti.finish", *DAG_TASK, "state"),
    counter("ti_successes", *DAG_TASK),
    counter("ti_failures", *DAG_TASK),
    counter("operator_successes", *DAG_TASK, "operator_name"),
    counter("operator_failures", *DAG_TASK, "operator_name"),
    counter("task_instance_created", "dag_id", "run_type", "task_type"),
    timer("task.duration", *DAG_TASK, long=True),
    timer("task.scheduled_duration", *DAG_TASK, "queue", long=True),
    # task instances in each unfinished state, per queue, DAG and task: the scheduler counts them from
    # the database every [scheduler] ti_metrics_interval (30 s), only for states that have any
    *(gauge(f"ti.{state}", "queue", *DAG_TASK) for state in TI_STATE_GAUGES),
    # DAG runs: the state is a part of the name (dagrun.duration.success)
    Mapped(
        "dagrun.duration.*",
        "timer",
        "dagrun_duration",
        ("dag_id", "run_type"),
        (("state", 1),),
        tuple(LONG_BUCKETS),
    ),
    timer("dagrun.dependency-check", "dag_id", "run_type"),
    # pools: the scheduler counts every pool's slots from the database, every pool_metrics_interval
    gauge("pool.open_slots", *POOL),
    gauge("pool.queued_slots", *POOL),
    gauge("pool.running_slots", *POOL),
    gauge("pool.deferred_slots", *POOL),
    gauge("pool.scheduled_slots", *POOL),
    gauge("pool.starving_tasks", *POOL),
    # executors (per scheduler process: with several schedulers, the last one to report wins)
    gauge("executor.open_slots", *EXECUTOR),
    gauge("executor.queued_tasks", *EXECUTOR),
    gauge("executor.running_tasks", *EXECUTOR),
    # the scheduler's loop
    gauge("scheduler.tasks.executable"),
    gauge("scheduler.tasks.starving"),
    gauge("scheduler.dagruns.running"),
    timer("scheduler.scheduler_loop_duration"),
    timer("scheduler.critical_section_duration"),
    timer("scheduler.critical_section_query_duration"),
    timer("scheduler.executor_heartbeat_duration", "executor"),
    counter("scheduler.orphaned_tasks.adopted"),
    counter("scheduler.orphaned_tasks.cleared"),
    counter("scheduler.dag_bag.cache_hit"),
    counter("scheduler.dag_bag.cache_miss"),
    # DAG parsing
    gauge("dag_processing.import_errors"),
    gauge("dag_processing.total_parse_time"),
    gauge("dag_processing.file_path_queue_size"),
    counter("dag_processing.file_path_queue_update_count"),
    counter("dag_processing.processes", "file_path", "action"),
    timer("dag_processing.last_duration", "bundle_name", "file_name"),
    gauge("dag_processing.last_run.seconds_ago", "file_path", "bundle_name", "file_name"),
    gauge("dagbag_size"),
    # the triggerer: tagged with its host name, one series per triggerer pod
    gauge("triggerer.capacity_left", "hostname"),
    gauge("triggers.running", "hostname"),
)

DROPPED: tuple[str, ...] = (
    # the legacy forms: ids in the name (their tagged twins are mapped above)
    "dag.*.*.duration",
    "dag.*.*.scheduled_duration",
    "dag.*.*.queued_duration",
    "ti.start.*.*",
    "ti.finish.*.*.*",
    *(f"ti.{state}.*.*.*" for state in TI_STATE_GAUGES),
    "dagrun.duration.*.*",
    "dagrun.dependency-check.*",
    "pool.*.*",
    "executor.*.*",
    "dag_processing.last_duration.*.*",
    "dag_processing.last_run.seconds_ago.*",
    "triggerer.capacity_left.*",
    "triggers.running.*",
)


DROPPED_PATTERNS: tuple[str, ...] = (
    # the operator's class name glued to the name (operator_failures__PythonDecoratedOperator): the
    # exporter's globs match whole parts only, so these are regular expressions
    r"^airflow\.operator_(successes|failures)_.+$",
    r"^airflow\.task_instance_created_.+$",
)


def by_statsd_name() -> dict[str, Mapped]:
    return {mapped.statsd: mapped for mapped in METRICS}


def by_prometheus_name() -> dict[str, Mapped]:
    return {mapped.prometheus_name: mapped for mapped in METRICS}


def _rule(mapped: Mapped) -> dict[str, object]:
    rule: dict[str, object] = {"match": f"{PREFIX}.{mapped.statsd}", "name": mapped.prometheus_name}
    if mapped.from_name:
        rule["labels"] = {label: f"${number}" for label, number in mapped.from_name}
    if mapped.kind == "timer":
        rule["observer_type"] = "histogram"
        rule["histogram_options"] = {"buckets": list(mapped.buckets)}
    return rule


def _drop(match: str, regex: bool = False) -> dict[str, object]:
    rule: dict[str, object] = {"match": match, "name": "dropped", "action": "drop"}
    if regex:
        rule["match_type"] = "regex"
    return rule


def mapping_config() -> dict[str, object]:
    """The exporter's mapping file, as data (metrics.py writes it as YAML into a ConfigMap)."""
    drops = [_drop(f"{PREFIX}.{pattern}") for pattern in DROPPED]
    drops += [_drop(pattern, regex=True) for pattern in DROPPED_PATTERNS]
    # Mapped names first: the exporter takes the first rule that matches, in order.
    return {"mappings": [*(_rule(mapped) for mapped in METRICS), *drops]}
