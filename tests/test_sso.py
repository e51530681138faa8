"""Single sign-on, offline: the generated webserver_config.py, who mounts what, and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import names
from components.config.loading import ConfigError, load_stack_config
from components.control_plane import sso
from tests.support import containers, decoded_secret, env_of, evaluate_ok, pod_spec
from tools.mock_engine import Evaluation, reveal

E = names.AirflowEnv
OIDC: dict[str, Any] = {
    "enabled": True,
    "issuerUrl": "https://login.example.com/realms/data",
    "clientId": "airflow",
    "clientSecret": "oidc-client-secret-41",
    "scopes": ["openid", "email", "profile", "groups"],
    "roleMapping": {"airflow-admins": ["Admin"], "analysts": ["Viewer", "Viewer"]},
    "defaultRole": "Viewer",
}


def with_oidc(**auth: Any) -> Evaluation:
    return evaluate_ok("dev", secret_overrides={"auth": {"oidc": OIDC, **auth}})


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    return with_oidc()


def generated(evaluation: Evaluation) -> str:
    return reveal(evaluation.find("ConfigMap", names.WEBSERVER_CONFIG_MAP))["data"][names.WEBSERVER_CONFIG_KEY]


def load(source: str) -> dict[str, Any]:
    """Run the generated file as FAB does (Flask's from_pyfile executes it) and return its settings."""
    settings: dict[str, Any] = {"__file__": "webserver_config.py"}
    exec(compile(source, "webserver_config.py", "exec"), settings)
    return settings


def test_the_generated_config_signs_in_with_the_configured_provider(evaluation: Evaluation) -> None:
    settings = load(generated(evaluation))
    from flask_appbuilder.security.manager import AUTH_OAUTH

    assert settings["AUTH_TYPE"] == AUTH_OAUTH
    [provider] = settings["OAUTH_PROVIDERS"]
    assert provider["name"] == "sso"
    remote = provider["remote_app"]
    assert remote["client_id"] == "airflow"
    assert remote["server_metadata_url"] == "https://login.example.com/realms/data/.well-known/openid-configuration"
    assert remote["client_kwargs"] == {"scope": "openid email profile groups"}
    # no client secret in the ConfigMap: without the mounted file the value is empty
    assert remote["client_secret"] == ""
    assert "oidc-client-secret-41" not in generated(evaluation)


def test_claim_values_map_to_roles_and_everyone_else_gets_the_default_role(evaluation: Evaluation) -> None:
    settings = load(generated(evaluation))
    assert settings["AUTH_ROLES_MAPPING"] == {
        "airflow-admins": ["Admin"],
        "analysts": ["Viewer"],
        sso.DEFAULT_ROLE_KEY: ["Viewer"],
    }
    assert settings["AUTH_ROLES_SYNC_AT_LOGIN"] is True and settings["AUTH_USER_REGISTRATION"] is True
    manager = settings["SECURITY_MANAGER_CLASS"]
    from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride

    assert issubclass(manager, FabAirflowSecurityManagerOverride)
    info = manager.get_oauth_user_info
    claims = {"sub": "u1", "preferred_username": "ada", "email": "ada@example.com", "groups": ["analysts", "x"]}
    assert info(object(), "sso", {"userinfo": claims})["role_keys"] == ["analysts"]
    unmapped = info(object(), "sso", {"userinfo": {**claims, "groups": ["x"]}})
    assert unmapped["role_keys"] == [sso.DEFAULT_ROLE_KEY]
    # a provider cannot claim the default key to pick a role
    forged = info(object(), "sso", {"userinfo": {**claims, "groups": [sso.DEFAULT_ROLE_KEY]}})
    assert forged["role_keys"] == [sso.DEFAULT_ROLE_KEY]
    assert info(object(), "sso", {"userinfo": claims})["username"] == "ada"


def test_the_claim_names_come_from_the_config() -> None:
    settings = load(generated(with_oidc(oidc={**OIDC, "rolesClaim": "roles", "usernameClaim": "email"})))
    info = settings["SECURITY_MANAGER_CLASS"].get_oauth_user_info
    user = info(object(), "sso", {"userinfo": {"sub": "u", "email": "a@b.c", "roles": "airflow-admins"}})
    assert user["role_keys"] == ["airflow-admins"] and user["username"] == "a@b.c"


def test_only_the_api_server_container_mounts_the_client_secret(evaluation: Evaluation) -> None:
    assert decoded_secret(evaluation, names.OIDC_SECRET) == {names.OIDC_CLIENT_SECRET_KEY: "oidc-client-secret-41"}
    for obj in evaluation.kubernetes_objects():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        manifest = reveal(obj)
        for container in [*containers(manifest, init=True), *containers(manifest)]:
            holds = sso.CLIENT_SECRET.env()["name"] in env_of(container)
            expected = manifest["metadata"]["name"] == names.API_SERVER and container["name"] == "api-server"
            assert holds == expected, (manifest["metadata"]["name"], container["name"])
    volumes = pod_spec(reveal(evaluation.find("Deployment", names.API_SERVER)))["volumes"]
    [secret_volume] = [v for v in volumes if v.get("secret", {}).get("secretName") == names.OIDC_SECRET]
    assert secret_volume["secret"]["items"] == [{"key": names.OIDC_CLIENT_SECRET_KEY, "path": "client-secret"}]


def test_the_api_server_reads_the_generated_file_read_only(evaluation: Evaluation) -> None:
    deployment = reveal(evaluation.find("Deployment", names.API_SERVER))
    for container in [*containers(deployment, init=True), *containers(deployment)]:
        if container["name"] in ("api-server", "bootstrap-admin"):
            assert env_of(container)[E.FAB_CONFIG_FILE] == sso.PATH
            [mount] = [m for m in container["volumeMounts"] if m["name"] == sso.VOLUME]
            assert mount["readOnly"] is True
    for workload in (names.SCHEDULER, names.DAG_PROCESSOR, names.TRIGGERER):
        for container in containers(reveal(evaluation.find("Deployment", workload))):
            assert E.FAB_CONFIG_FILE not in env_of(container)


def test_without_oidc_there_is_no_generated_config_and_no_client_secret() -> None:
    evaluation = evaluate_ok("dev")
    assert names.WEBSERVER_CONFIG_MAP not in evaluation.names_of("ConfigMap")
    assert names.OIDC_SECRET not in evaluation.names_of("Secret")


def test_the_admin_login_stays_by_default_and_can_be_switched_off(evaluation: Evaluation) -> None:
    assert names.ADMIN_SECRET in evaluation.names_of("Secret")
    assert "adminPassword" in evaluation.outputs
    off = with_oidc(adminLogin=False)
    assert names.ADMIN_SECRET not in off.names_of("Secret")
    assert "adminPassword" not in off.outputs and "adminUsername" not in off.outputs
    bootstrap = next(
        c
        for c in containers(reveal(off.find("Deployment", names.API_SERVER)), init=True)
        if c["name"] == "bootstrap-admin"
    )
    # no password file: the init container deactivates the admin user instead
    assert E.ADMIN_PASSWORD_FILE not in env_of(bootstrap)


# --- bad input, before anything registers ------------------------------------------------------------


def problems(auth: dict[str, Any], secret: bool = True, **others: Any) -> list[str]:
    raw = {"airflow-k8s:auth": json.dumps(auth), **{f"airflow-k8s:{k}": json.dumps(v) for k, v in others.items()}}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw, {"airflow-k8s:auth"} if secret else set())
    return [str(problem) for problem in caught.value.problems]


def test_the_issuer_must_be_https_when_the_ui_is() -> None:
    auth = {"oidc": {**OIDC, "issuerUrl": "http://login.example.com"}}
    [found] = problems(auth, apiServer={"baseUrl": "https://airflow.example.com"})
    assert found == (
        'airflow-k8s:auth.oidc.issuerUrl = "http://login.example.com": must be https: the UI is served over '
        "https (apiServer.baseUrl); plain http is for dev setups only"
    )
    # a dev setup (port-forward, plain http) may use a plain-http provider
    evaluate_ok("dev", secret_overrides={"auth": auth})


def test_an_unknown_role_is_named_with_the_allowed_ones() -> None:
    [found] = problems({"oidc": {**OIDC, "roleMapping": {"admins": ["Superuser"]}}})
    assert found.startswith('airflow-k8s:auth.oidc.roleMapping.admins[0] = "Superuser": must be one of "Admin"')
    [found] = problems({"oidc": {**OIDC, "defaultRole": "Guest"}})
    assert found.startswith('airflow-k8s:auth.oidc.defaultRole = "Guest": must be one of "Admin", "Op", "User"')


def test_an_empty_mapping_is_rejected() -> None:
    [found] = problems({"oidc": {**OIDC, "roleMapping": {}}})
    assert found.startswith("airflow-k8s:auth.oidc.roleMapping = {}: must map at least one claim value to roles")
    [found] = problems({"oidc": {**OIDC, "roleMapping": {"admins": []}}})
    assert found.startswith("airflow-k8s:auth.oidc.roleMapping.admins = []: must list at least one of Admin")


def test_issuer_client_and_secret_are_required() -> None:
    found = problems({"oidc": {"enabled": True, "roleMapping": {"a": ["Admin"]}}})
    assert found == [
        f"airflow-k8s:auth.oidc.{key} = (not set): required when auth.oidc.enabled is true"
        for key in ("issuerUrl", "clientId", "clientSecret")
    ]


def test_the_client_secret_must_be_set_as_a_secret_and_is_never_shown() -> None:
    [found] = problems({"oidc": OIDC}, secret=False)
    assert found == (
        "airflow-k8s:auth.oidc.clientSecret = [secret]: must be set with "
        "`pulumi config set --secret --path auth.oidc.clientSecret ...`"
    )
    assert "oidc-client-secret-41" not in found


def test_openid_is_a_required_scope() -> None:
    [found] = problems({"oidc": {**OIDC, "scopes": ["email"]}})
    assert found.startswith('airflow-k8s:auth.oidc.scopes = ["email"]: must include openid')


def test_nobody_could_sign_in_without_admin_login_or_oidc() -> None:
    [found] = problems({"adminLogin": False}, secret=False)
    assert found.startswith("airflow-k8s:auth.adminLogin = false: nobody could sign in")
