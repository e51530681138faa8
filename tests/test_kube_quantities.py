"""Quantities are parsed as the API server parses them and written in the form it stores them."""

from __future__ import annotations

import pytest

from components.kube.quantities import canonical_quantity, parse_quantity

CANONICAL = [
    ("1024Mi", "1Gi"),
    ("2048Ki", "2Mi"),
    ("1536Mi", "1536Mi"),
    ("2.5Gi", "2560Mi"),
    ("1000m", "1"),
    ("0.5", "500m"),
    ("1.5", "1500m"),
    ("0.1", "100m"),
    ("2000", "2k"),
    ("1000k", "1M"),
    ("1048576", "1048576"),
    ("1e3", "1e3"),
    ("250m", "250m"),
    ("8Gi", "8Gi"),
    ("0", "0"),
]


@pytest.mark.parametrize(("text", "stored"), CANONICAL)
def test_quantities_are_written_as_the_api_server_stores_them(text: str, stored: str) -> None:
    assert canonical_quantity(text) == stored
    assert parse_quantity(stored) == parse_quantity(text)


def test_the_program_writes_every_quantity_canonically() -> None:
    from tests.support import evaluate_ok

    evaluation = evaluate_ok(
        "dev",
        scheduler={
            "resources": {
                "requests": {"cpu": "0.5", "memory": "1024Mi"},
                "limits": {"cpu": "1000m", "memory": "2048Mi"},
            }
        },
        redis={"persistence": {"enabled": True, "size": "1024Mi"}},
        executor="CeleryExecutor",
    )
    scheduler = evaluation.find("Deployment", "airflow-scheduler")["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    claim = evaluation.find("StatefulSet", "airflow-redis")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
