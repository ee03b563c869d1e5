"""The end-to-end check: the project's page and its scheduler answer over HTTP(S), from here.

Over https the certificate is checked against what this project installed (a given certificate,
or the chain a private ACME CA issued), so a test CA need not be trusted system-wide.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import acme
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError


def fetch(url: str, data: bytes | None = None, timeout: float = 20.0,
          context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """(HTTP status, body) or raise RemoteError with one line."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"{url} does not answer: {reason}") from None


def tls_context(ctx: Context) -> ssl.SSLContext | None:
    """Trust for the project's https URL: the installed certificate (or a private ACME CA's
    chain) as anchor, the name still checked; None: the system's CAs (a public ACME CA)."""
    spec = ctx.wanted
    if not spec.url_base.startswith("https://") or not (spec.https_cert or spec.acme_server):
        return None
    pem = ctx.host.read_text(spec.https_cert or acme.chain_file(spec))
    if not pem:
        raise RemoteError(f"no certificate at {spec.https_cert or acme.chain_file(spec)}")
    try:
        context = ssl.create_default_context(cadata=pem)
    except ssl.SSLError as exc:
        raise RemoteError(f"cannot read the project's certificate: {exc}") from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def check_project(spec: ProjectSpec, context: ssl.SSLContext | None = None) -> None:
    code, body = fetch(spec.master_url, context=context)
    if code != 200 or "boinc_scheduler" not in body:
        raise RemoteError(f"the project page {spec.master_url} answered HTTP {code} without a "
                          "scheduler link")
    code, body = fetch(spec.cgi_url + "cgi", data=b"<scheduler_request>\n</scheduler_request>\n",
                       context=context)
    if code != 200 or "<scheduler_reply>" not in body:
        raise RemoteError(f"the scheduler {spec.cgi_url}cgi answered HTTP {code} without a "
                          "<scheduler_reply>")


def _gather(ctx: Context) -> None:
    return None


def _decide(_facts: None, _spec: ProjectSpec) -> list[Action]:
    return []


def _apply(_ctx: Context, _actions: list[Action]) -> None:
    return None


def _check(ctx: Context) -> None:
    check_project(ctx.wanted, tls_context(ctx))


STEP = Step("verify", "check the project URL and the scheduler", _gather, _decide, _apply,
            hint="check that the URL base reaches this host's Apache (firewall, --url-base), then "
                 "run the same command again", check=_check)
