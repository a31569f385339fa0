from __future__ import annotations

import pytest

from postgate.core.bounce import classify_reply


@pytest.mark.parametrize(
    ("code", "text", "hard", "status"),
    [
        (
            550,
            "5.1.1 <a@x>: Recipient address rejected: User unknown in local recipient table",
            True,
            "5.1.1",
        ),
        (550, "5.1.2 Host or domain name not found", True, "5.1.2"),
        (551, "User not local; please try <b@y>", False, ""),
        (550, "Requested action not taken: mailbox unavailable", True, ""),
        (
            554,
            "5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            False,
            "5.7.1",
        ),
        (550, "5.7.26 This message does not have authentication information", False, "5.7.26"),
        (552, "5.2.2 Mailbox full", False, "5.2.2"),
        (450, "4.2.0 Greylisted", False, "4.2.0"),
        (550, "Message rejected as spam", False, ""),
        (553, "sorry, that domain isn't in my list of allowed rcpthosts", False, ""),
    ],
)
def test_dead_addresses_are_hard_and_policy_rejections_are_not(
    code: int, text: str, hard: bool, status: str
) -> None:
    verdict = classify_reply(code, text)
    assert (verdict.hard, verdict.status) == (hard, status)
