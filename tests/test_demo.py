"""``postgate demo`` runs the whole pipeline on embedded defaults and reports truthfully."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_sends_blocks_and_explains(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "REDIS_URL")
    }
    result = subprocess.run(
        [sys.executable, "-m", "postgate", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sent 3, blocked 6" in out and "failed 1" in out
    for line in (
        "anna@example.com         sent",
        "dora@example.com         blocked  consent_stale",
        "csaba@example.com        blocked  suppressed",
        "nobody@example.com       failed   smtp_rejected: 550",
    ):
        assert line in out
    assert "the local SMTP sink received 3 message(s)" in out
    assert "dead letter from 'campaigns': invalid campaign.v1" in out
    assert "campaign 'replica-deal' rejected by the content policy (ip_infringement" in out
    assert out.strip().splitlines()[-1].startswith('{"sent": 3, "failed": 1')
    assert (tmp_path / "postgate.db").exists()
