"""The end-to-end check: the project's page and its scheduler answer over HTTP, from here."""

from __future__ import annotations

import urllib.error
import urllib.request

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError


def fetch(url: str, data: bytes | None = None, timeout: float = 20.0) -> tuple[int, str]:
    """(HTTP status, body) or raise RemoteError with one line."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"{url} does not answer: {reason}") from None


def check_project(spec: ProjectSpec) -> None:
    code, body = fetch(spec.master_url)
    if code != 200 or "boinc_scheduler" not in body:
        raise RemoteError(f"the project page {spec.master_url} answered HTTP {code} without a "
                          "scheduler link")
    code, body = fetch(spec.cgi_url + "cgi", data=b"<scheduler_request>\n</scheduler_request>\n")
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
    check_project(ctx.wanted)


STEP = Step("verify", "check the project URL and the scheduler", _gather, _decide, _apply,
            hint="check that the URL base reaches this host's Apache (firewall, --url-base), then "
                 "run the same command again", check=_check)
