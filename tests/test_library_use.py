"""airflow-k8s as a library: another Pulumi program creates AirflowStack with its own provider and its own
typed arguments, without a Pulumi.<stack>.yaml of ours; and the repository builds into a wheel that
such a program installs (a git dependency) and runs from, with this checkout nowhere on its path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pulumi
import pytest

from components.config.model import DagsConfig, ImageConfig, SchedulerConfig, StackConfig
from components.stack import TYPE_TOKEN, AirflowStack, AirflowStackArgs
from tools.mock_engine import evaluate

ROOT = Path(__file__).resolve().parent.parent


def consumer_program() -> None:
    """What a platform team's own program looks like: its provider, its config, its outputs."""
    from pulumi_kubernetes.provider import Provider

    cluster = Provider("team-data-cluster", kubeconfig="~/.kube/team-data", namespace="team-data")
    config = StackConfig(
        namespace="team-data",
        executor="KubernetesExecutor",
        image=ImageConfig(repository="registry.example.com/team-data/airflow", tag="3.3.2-team.4"),
        dags=DagsConfig(delivery="image", example_resources=False),
        scheduler=SchedulerConfig(replicas=2),
    )
    airflow = AirflowStack("airflow", AirflowStackArgs(config), pulumi.ResourceOptions(providers=[cluster]))
    pulumi.export("airflowUrl", airflow.ui_url)
    pulumi.export("airflowNamespace", airflow.namespace)


def test_a_consumer_program_creates_the_stack_with_its_own_provider_and_typed_args() -> None:
    evaluation = evaluate({}, program=consumer_program)  # no config at all: not a stack file of ours
    assert evaluation.error is None, evaluation.error
    [root] = evaluation.of_type(TYPE_TOKEN)
    assert root.name == "airflow"
    [provider] = evaluation.of_type("pulumi:providers:kubernetes")
    assert provider.name == "team-data-cluster"
    objects = [r for r in evaluation.custom() if r.type.startswith("kubernetes:")]
    assert objects
    for registration in objects:
        assert registration.provider.startswith(provider.urn), registration.name
    assert evaluation.find("Namespace", "team-data")
    scheduler = evaluation.find("Deployment", "airflow-scheduler")
    assert scheduler["spec"]["replicas"] == 2
    image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/team-data/airflow:3.3.2-team.4"
    assert "airflow-dags" not in evaluation.names_of("ConfigMap")
    assert evaluation.outputs == {"airflowUrl": "http://localhost:8080", "airflowNamespace": "team-data"}


def test_python_callers_get_the_same_validation_as_stack_files() -> None:
    with pytest.raises(ValueError, match="DNS-1123"):
        StackConfig(namespace="Team_Data")
    with pytest.raises(ValueError, match="minReplicas"):
        StackConfig.model_validate({"workers": [{"name": "a", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}]})


HARNESS = """
import json, sys
import pulumi
from pulumi.runtime import mocks

class Mocks(mocks.Mocks):
    registered = []
    def new_resource(self, args):
        Mocks.registered.append([args.typ, args.name])
        outputs = dict(args.inputs)
        if args.typ.startswith("random:"):
            outputs.update(result="r" * 32, base64="YWJj" * 11)
        return args.name + "_id", outputs
    def call(self, args):
        return {}, None

pulumi.runtime.set_mocks(Mocks(), project="platform", stack="team-data", preview=False)
from pulumi.runtime import settings
settings.ROOT.set(None)  # set_mocks made a root stack; the program runs under its own, as `pulumi up` does

import components, dags
from components.config.model import StackConfig
from components.stack import AirflowStack, AirflowStackArgs
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

def program():
    AirflowStack("airflow", AirflowStackArgs(StackConfig(namespace="team-data")))

_sync_await(run_pulumi_func(lambda: Stack(program) and None))
print(json.dumps({"components": components.__file__, "dags": list(dags.__path__), "registered": Mocks.registered}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `uv build` makes of this repository (the uv build backend, offline), unpacked as pip would."""
    out = tmp_path_factory.mktemp("wheel")
    uv = os.environ.get("UV", "uv")
    build = subprocess.run(
        [uv, "build", "--wheel", "--offline", "--out-dir", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    [wheel] = out.glob("airflow_k8s-*.whl")
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_built_package_runs_from_an_install_without_this_checkout(installed: Path, tmp_path: Path) -> None:
    # The consumer's interpreter sees the installed package and the program's dependencies, not the repo.
    dependencies = [p for p in sys.path if p.endswith("site-packages")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), *dependencies])}
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[str(installed), *dependencies]!r}\n{HARNESS}"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["components"].startswith(str(installed))
    assert all(path.startswith(str(installed)) for path in report["dags"])
    kinds = {name for typ, name in report["registered"] if typ.startswith("kubernetes:")}
    # the ConfigMap delivery ships the example DAGs and the scripts from the package itself
    assert {"airflow-dags", "airflow-scripts", "airflow-scheduler", "team-data"} <= kinds
