"""tests/statsd_exporter.py works: the real statsd_exporter 0.30.0 turns StatsD lines, in the form
Airflow 3.3 sends them with ``[metrics] statsd_influxdb_enabled`` (the name, then ``,tag=value`` pairs),
into the Prometheus metrics a mapping file names, with the tags as labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import statsd_exporter

pytestmark = pytest.mark.real

MAPPING = """\
defaults:
  observer_type: histogram
  histogram_options:
    buckets: [0.5, 1, 5]
mappings:
  # statsd_exporter adds no _total to a counter's name: the mapping gives it
  - match: airflow.scheduler_heartbeat
    name: airflow_scheduler_heartbeat_total
  - match: airflow.ti.finish
    name: airflow_task_finish_total
  - match: airflow.pool.open_slots
    name: airflow_pool_open_slots
  - match: airflow.task.duration
    name: airflow_task_duration_seconds
  # the legacy form of ti.finish, ti.finish.<dag_id>.<task_id>.<state>: not exported
  - match: airflow.ti.finish.*.*.*
    name: dropped
    action: drop
"""


@pytest.fixture(scope="module")
def exporter() -> Iterator[statsd_exporter.StatsdExporter]:
    try:
        running = statsd_exporter.start(MAPPING)
    except statsd_exporter.BinariesMissing as missing:
        if os.environ.get("AIRFLOW_K8S_REQUIRE_REAL_TIERS"):
            raise  # CI has the binary: a missing one is a failure there, not a skip
        pytest.skip(str(missing))
    with running:
        yield running


def test_a_counter_with_influxdb_tags_becomes_a_labelled_counter(exporter: statsd_exporter.StatsdExporter) -> None:
    exporter.send(
        "airflow.ti.finish,dag_id=etl,task_id=load,state=success:1|c",
        "airflow.ti.finish,dag_id=etl,task_id=load,state=success:1|c",
        "airflow.ti.finish,dag_id=etl,task_id=load,state=failed:1|c",
        "airflow.ti.finish.etl.load.success:1|c",
    )
    found = exporter.wait_for("airflow_task_finish_total", lambda samples: sum(v for _, v in samples) == 3)
    assert sorted(found, key=lambda sample: sample[0]["state"]) == [
        ({"dag_id": "etl", "task_id": "load", "state": "failed"}, 1.0),
        ({"dag_id": "etl", "task_id": "load", "state": "success"}, 2.0),
    ]
    exposed = exporter.types()
    assert exposed["airflow_task_finish_total"] == "counter"
    assert not [name for name in exposed if "etl" in name or name == "dropped"]


def test_a_counter_without_tags_keeps_counting(exporter: statsd_exporter.StatsdExporter) -> None:
    exporter.send(*["airflow.scheduler_heartbeat:1|c"] * 3)
    assert exporter.wait_for("airflow_scheduler_heartbeat_total", lambda s: s == [({}, 3.0)]) == [({}, 3.0)]


def test_a_gauge_keeps_the_last_value_per_label_set(exporter: statsd_exporter.StatsdExporter) -> None:
    exporter.send(
        "airflow.pool.open_slots,pool_name=default_pool:128|g",
        "airflow.pool.open_slots,pool_name=default_pool:127|g",
        "airflow.pool.open_slots,pool_name=no_slots:0|g",
    )
    expected = [({"pool_name": "default_pool"}, 127.0), ({"pool_name": "no_slots"}, 0.0)]
    found = exporter.wait_for("airflow_pool_open_slots", lambda s: sorted(s, key=str) == expected)
    assert sorted(found, key=str) == expected
    assert exporter.types()["airflow_pool_open_slots"] == "gauge"


def test_a_timer_in_milliseconds_becomes_a_histogram_in_seconds(exporter: statsd_exporter.StatsdExporter) -> None:
    exporter.send(
        "airflow.task.duration,dag_id=etl,task_id=load:250|ms",
        "airflow.task.duration,dag_id=etl,task_id=load:3000|ms",
    )
    counts = exporter.wait_for("airflow_task_duration_seconds_count", lambda s: s and s[0][1] == 2)
    assert exporter.types()["airflow_task_duration_seconds"] == "histogram"
    assert counts == [({"dag_id": "etl", "task_id": "load"}, 2.0)]
    assert exporter.samples("airflow_task_duration_seconds_sum") == [({"dag_id": "etl", "task_id": "load"}, 3.25)]
    buckets = {labels["le"]: value for labels, value in exporter.samples("airflow_task_duration_seconds_bucket")}
    assert buckets == {"0.5": 1.0, "1": 1.0, "5": 2.0, "+Inf": 2.0}


def test_a_missing_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_K8S_STATSD_EXPORTER", str(tmp_path / "nowhere"))
    with pytest.raises(statsd_exporter.BinariesMissing, match="AIRFLOW_K8S_STATSD_EXPORTER"):
        statsd_exporter.find_binary()


def test_check_mapping_accepts_a_good_mapping_and_names_the_error_of_a_bad_one(
    exporter: statsd_exporter.StatsdExporter,
) -> None:
    assert statsd_exporter.check_mapping(MAPPING) == []
    errors = statsd_exporter.check_mapping("mappings:\n  - match: airflow.ti.finish\n    name: airflow-task-finish\n")
    assert len(errors) == 1 and "metric name 'airflow-task-finish'" in errors[0], errors
    assert statsd_exporter.check_mapping("mappings: [") != []
