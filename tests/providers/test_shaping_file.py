"""The shaping file: the built-in one places real providers' MX names in their groups
and its rules match the replies those providers really send; a wrong file is refused
when a sender starts, with one line naming the file and what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from postgate.core.shaping import Action
from postgate.providers.mx import MxProvider
from postgate.providers.shaping_file import ShapingError, load
from postgate.settings import Settings

MX_NAMES = {
    "gmail-smtp-in.l.google.com": "google",
    "alt4.aspmx.l.google.com": "google",  # Google Workspace
    "example-com.mail.protection.outlook.com": "microsoft",
    "hotmail-com.olc.protection.outlook.com": "microsoft",
    "mta5.am0.yahoodns.net": "yahoo",
    "mx-aol.mail.gm0.yahoodns.net": "yahoo",
    "mx01.mail.icloud.com": "apple",
    "mx00.gmx.net": "gmx",
    "mx-ha02.web.de": "gmx",
    "mx.freemail.hu": "freemail",
    "mx1.citromail.hu": "freemail",
    "mx.shop.example": "default",
    "google.com.evil.example": "default",  # a suffix, not a substring
}
REPLIES = [
    (
        "google",
        421,
        "4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail "
        "originating from your IP address.",
        ("gmail-rate-limit", Action.SLOW),
    ),
    (
        "google",
        421,
        "4.7.0 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail",
        ("gmail-rate-limit", Action.SLOW),
    ),
    (
        "yahoo",
        421,
        "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
        "or user complaints - 4.16.55.1",
        ("yahoo-ts", Action.SUSPEND),
    ),
    (
        "microsoft",
        451,
        "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
        "reputation.",
        ("microsoft-throttle", Action.SLOW),
    ),
    (
        "microsoft",
        550,
        "5.7.515 Access denied, sending domain example.com doesn't meet the required "
        "authentication level.",
        ("microsoft-auth", Action.SUSPEND_TENANT),
    ),
    ("google", 550, "5.1.1 The email account that you tried to reach does not exist.", None),
    ("microsoft", 421, "4.7.28 unusual rate", None),  # another group's rule
    ("yahoo", None, "4.7.0 [TSS04] deferred", None),  # no reply at all
]


@pytest.mark.parametrize(("host", "group"), MX_NAMES.items())
def test_the_built_in_file_places_each_provider_by_its_mx_names(host: str, group: str) -> None:
    assert load().group_of(["unknown.example", host]) == group


def test_a_domain_goes_by_its_most_preferred_mx_that_names_a_group() -> None:
    assert load().group_of(["mx01.mail.icloud.com", "mx00.gmx.net"]) == "apple"
    assert load().group_of(["mx.shop.example"]) == "default"


@pytest.mark.parametrize(("group", "code", "detail", "expected"), REPLIES)
def test_the_built_in_rules_match_the_providers_replies(
    group: str, code: int | None, detail: str, expected: tuple[str, Action] | None
) -> None:
    rule = load().rule_for(group, code, detail)
    assert (None if rule is None else (rule.name, rule.action)) == expected


def test_the_built_in_limits() -> None:
    shaping = load()
    google = shaping.groups["google"]
    assert (google.connections, google.rate, google.tenant_share) == (40, 50.0, 0.5)
    assert shaping.groups["default"].connections is None  # MX_CONNECTIONS_PER_DOMAIN
    assert shaping.groups["default"].rate == 0.0  # no pace of its own


BAD = [
    ("[groups.default]\nconections = 3\n", "groups.default.conections: Extra inputs"),
    ("[groups.default]\nper_minute = -5\n", "groups.default.per_minute: Input should be greater"),
    ("[groups.default]\ntenant_share = 1.5\n", "groups.default.tenant_share"),
    ('[groups.google]\nmx = ["*.google.com"]\n', "a group named 'default' is required"),
    ('[groups.default]\nmx = ["*.x.example"]\n', "group 'default' takes every other domain"),
    ("[groups.default]\n[groups.g]\nmx = ['*.Google .com']\n", "groups.g.mx.0: String should"),
    (
        '[groups.default]\n[[rules]]\nname = "r"\ntext = "4\\\\.7\\\\.(28"\n'
        'action = "slow"\nminutes = 5\n',
        "rules.0.text: Value error, not a regular expression",
    ),
    (
        '[groups.default]\n[[rules]]\nname = "r"\ngroups = ["gogle"]\naction = "slow"\n'
        "minutes = 5\n",
        "rule 'r' names unknown groups ['gogle']",
    ),
    (
        '[groups.default]\n[[rules]]\nname = "r"\naction = "pause"\nminutes = 5\n',
        "rules.0.action: Input should be 'slow', 'suspend' or 'suspend_tenant'",
    ),
    ("[groups.default\n", "not valid TOML"),
    (
        '[groups.default]\n[[rules]]\nname = "backoff"\naction = "slow"\nminutes = 5\n',
        "rule name 'backoff' is the generic backoff's",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD)
def test_a_wrong_shaping_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "shaping.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ShapingError) as refused:
        MxProvider(Settings(shaping_file=str(path)))

    assert str(refused.value).startswith(f"shaping file {path}: ")
    assert problem in str(refused.value)


def test_a_missing_shaping_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShapingError, match="cannot be read"):
        load(str(tmp_path / "nowhere.toml"))


def test_a_sender_with_a_wrong_shaping_file_does_not_start(tmp_path: Path) -> None:
    path = tmp_path / "shaping.toml"
    path.write_text("[groups.default]\nconnections = 0\n", encoding="utf-8")
    (tmp_path / "pg.db").touch()
    result = subprocess.run(
        [sys.executable, "-m", "postgate", "worker", "sender"],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=60,
        env=os.environ
        | {
            "SECRET_KEY": "c" * 40,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}",
            "EMAIL_PROVIDER": "mx",
            "SHAPING_FILE": str(path),
        },
    )

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"shaping file {path}: groups.default.connections: Input should be greater than or "
        "equal to 1"
    )
