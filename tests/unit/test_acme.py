"""HTTPS by ACME: what init-project asks of certbot, Apache and cron, decided from facts."""

from __future__ import annotations

import pytest

from pymw_admin.admin.server import acme, apache
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError

SPEC = ProjectSpec("proj", "https://boinc.example.org/", "h", acme_email="a@example.org",
                   acme_server="https://ca.example.org/dir", acme_ca="/etc/ca.pem")


def _facts(**changes: object) -> acme.AcmeFacts:
    base = dict(certbot=True, webroot_ok=True, domains=frozenset({"boinc.example.org"}),
                days_left=80, renewal_server="https://ca.example.org/dir",
                cron_text=acme.renew_cron(SPEC))
    base.update(changes)
    return acme.AcmeFacts(**base)  # type: ignore[arg-type]


def test_converged_changes_nothing() -> None:
    assert acme.decide(_facts(), SPEC) == []


def test_cold_host_plans_everything() -> None:
    facts = _facts(certbot=False, webroot_ok=False, domains=frozenset(), days_left=-1,
                   renewal_server="", cron_text=None)
    assert [a.kind for a in acme.decide(facts, SPEC)] == [
        "install", "make-webroot", "certonly", "write-renewal-cron"]


@pytest.mark.parametrize("changes", [{"days_left": 10},
                                     {"renewal_server": "https://other.example.org/dir"}])
def test_due_or_other_ca_is_replaced_now(changes: dict[str, object]) -> None:
    assert [a.kind for a in acme.decide(_facts(**changes), SPEC)] == ["renew-now"]


def test_leaving_acme_stops_renewal_only() -> None:
    plain = ProjectSpec("proj", "https://boinc.example.org/", "h", https_cert="/c", https_key="/k")
    assert [a.kind for a in acme.decide(_facts(), plain)] == ["remove-renewal-cron"]
    assert acme.decide(_facts(cron_text=None), plain) == []


def test_certbot_and_cron_commands() -> None:
    command = acme.certonly_command(SPEC)
    assert command.startswith("REQUESTS_CA_BUNDLE=/etc/ca.pem certbot certonly")
    for part in ("--webroot-path /var/lib/pymw-admin/acme", "--cert-name pymw-proj",
                 "--domain boinc.example.org", "--server https://ca.example.org/dir"):
        assert part in command
    assert "--server" not in acme.certonly_command(
        ProjectSpec("p", "https://b.example.org/", "h", acme_email="a@example.org"))
    line = acme.renew_cron(SPEC).splitlines()[-1]
    assert " root REQUESTS_CA_BUNDLE=/etc/ca.pem certbot renew" in line


def test_site_serves_challenges_and_https_once_the_certificate_exists() -> None:
    site = apache.site_config(SPEC)
    assert "Alias /.well-known/acme-challenge/ /var/lib/pymw-admin/acme/" in site
    assert '<IfFile "/etc/letsencrypt/live/pymw-proj/fullchain.pem">' in site
    assert "ServerName boinc.example.org" in site
    assert "ssl" in apache.wanted_modules(SPEC)


@pytest.mark.parametrize(("url", "extra", "message"), [
    ("http://b.example.org/", {}, "https:// URL base"),
    ("https://10.0.0.5/", {}, "DNS name, not the address"),
    ("https://localhost/", {}, "DNS name"),
    ("https://b.example.org/", {"acme_server": "http://ca/"}, "must be https"),
    ("https://b.example.org/", {"https_cert": "/c", "https_key": "/k"}, "choose one"),
])
def test_acme_needs_a_name_and_https(url: str, extra: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ProjectSpec("p", url, "h", acme_email="a@example.org", **extra)
