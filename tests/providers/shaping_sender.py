"""A sender process for the traffic-shaping tests: ``python -m tests.providers.shaping_sender
START TENANT ADDRESS...`` waits until wall-clock time START, hands every address to its
own direct-to-MX provider at once (settings from the environment, as a worker reads
them) and prints how many were sent, deferred and failed as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from postgate.providers.base import SENDING_TENANT
from postgate.providers.mx import MxProvider
from postgate.settings import Settings
from tests.providers.mx_servers import FROM, MESSAGE


async def main(start: float, tenant: str, addresses: list[str]) -> dict[str, int]:
    provider = MxProvider(Settings())
    await provider.start()
    SENDING_TENANT.set(tenant)
    await asyncio.sleep(max(0.0, start - time.time()))
    try:
        results = await asyncio.gather(*(provider.send(FROM, a, MESSAGE) for a in addresses))
    finally:
        await provider.close()
    return dict(Counter(r.outcome.value for r in results))


if __name__ == "__main__":
    start, tenant, *addresses = sys.argv[1:]
    print(json.dumps(asyncio.run(main(float(start), tenant, addresses))))
