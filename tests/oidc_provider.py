"""A real OpenID Connect provider on loopback for the tests: PyPI's ``oidc-provider-mock`` in a thread.

Any client id and secret are accepted (no registration) and any redirect URI. Its authorization page is
a form: a text input named ``sub`` and an "Authorize" submit button; whatever subject is typed in is
logged in, with the claims ``set_user`` gave it (else only ``email``: the subject). Claims that are not
standard OIDC ones (``groups``, ...) go into the ID token and the userinfo answer whatever the scope.

The mock names its issuer after the Host of each request (``http://<host>/``, with no trailing slash),
so the issuer is exactly the URL a client uses: ``http://127.0.0.1:PORT`` here, and the relying party
and the browser must both use that URL (authlib accepts plain http on loopback, RFC 8252 §7.3).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast
from urllib.parse import quote

import httpx
import oidc_provider_mock  # pyright: ignore[reportMissingTypeStubs]
import werkzeug.serving

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["OidcProvider", "oidc_provider"]


@dataclass(frozen=True)
class OidcProvider:
    """The running provider. ``issuer_url`` has no trailing slash, as in the ID tokens' ``iss``."""

    issuer_url: str
    port: int

    @property
    def metadata_url(self) -> str:
        """OIDC discovery: what ``server_metadata_url`` (authlib, Flask-AppBuilder) points at."""
        return f"{self.issuer_url}/.well-known/openid-configuration"

    def set_user(self, sub: str, claims: Mapping[str, object]) -> None:
        """Give the subject ``sub`` these claims (all of them: earlier ones are replaced) for its next login."""
        response = httpx.put(f"{self.issuer_url}/users/{quote(sub, safe='')}", json=dict(claims), trust_env=False)
        response.raise_for_status()

    def revoke_tokens(self, sub: str) -> None:
        """Revoke every access and refresh token issued to ``sub``."""
        response = httpx.post(f"{self.issuer_url}/users/{quote(sub, safe='')}/revoke-tokens", trust_env=False)
        response.raise_for_status()


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def oidc_provider(
    *,
    users: Mapping[str, Mapping[str, object]] | None = None,
    require_nonce: bool = False,
    access_token_max_age: timedelta = timedelta(hours=1),
) -> Generator[OidcProvider, None, None]:
    """Start the provider on 127.0.0.1 on a free port; stop it on exit.

    ``users`` maps subjects to their claims up front (the form then also offers them as one-click buttons);
    ``set_user`` adds or changes one while the provider runs.
    """
    predefined = [oidc_provider_mock.User(sub=sub, claims=dict(claims)) for sub, claims in (users or {}).items()]
    app = cast(
        "WSGIApplication",
        oidc_provider_mock.app(
            require_client_registration=False,
            require_nonce=require_nonce,
            access_token_max_age=access_token_max_age,
            user_claims=predefined,
        ),
    )
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="oidc-provider", daemon=True
    )
    thread.start()
    try:
        yield OidcProvider(issuer_url=f"http://127.0.0.1:{server.server_port}", port=server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
