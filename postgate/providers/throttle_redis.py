"""Shaping state in Redis (``REDIS_URL``), shared by every sender: each decision is one
Lua script, so it is atomic across processes, and runs on Redis's clock, so machines
need not agree on the time. Every key expires: a killed sender's connection leases
lapse after ``lease_s`` unless renewed, an automation when its time is up.

Keys (``<QUEUE_PREFIX>:shaping:`` first): ``tat:<key>`` and ``tat:<key>|<tenant>``
(the buckets), ``lease:<key>`` (a sorted set of leases by expiry), ``waiters:<key>``
(senders refused a lease, by when they stop waiting), ``act:<key>:<action>``
and ``act:<key>:suspend_tenant:<tenant>`` (an automation; its value names the rule),
``strikes:<key>`` (throttling replies in a row that no rule matched: the generic
backoff doubles by it for every sender).

Any Redis error raises :class:`Unavailable`: the send is deferred, never sent unshaped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from postgate.core.shaping import Action, ActiveAction, Stage, Turn
from postgate.providers.throttle import WANT_S, Pace, Unavailable, bucket_of

T = TypeVar("T")
POOL_SIZE = 16  # Redis connections per sender process
ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)

NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"
TURN = (
    NOW
    + """
local held = redis.call('PTTL', KEYS[1])
if held > 0 then return {'suspend', tostring(held / 1000), 0} end
held = redis.call('PTTL', KEYS[2])
if held > 0 then return {'suspend_tenant', tostring(held / 1000), 0} end
local wanted = 0
if ARGV[4] == 'group' then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local others = redis.call('ZCARD', KEYS[5])
  if redis.call('ZSCORE', KEYS[5], ARGV[5]) then others = others - 1 end
  if others > 0 then wanted = 1 end
end
local rate = tonumber(ARGV[1])
if rate <= 0 then return {'go', '0', wanted} end
local slow = redis.call('GET', KEYS[3])
if slow then rate = rate * tonumber(cjson.decode(slow)['factor']) end
local burst, max_wait = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[4]) or '0')
local at = math.max(now, tat - (burst - 1) / rate)
if at - now > max_wait then return {'rate', string.format('%.6f', at - now), wanted} end
tat = math.max(tat, now) + 1 / rate
redis.call('SET', KEYS[4], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 60000)
return {'go', string.format('%.6f', at - now), wanted}
"""
)
LEASE = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
local waiting = redis.call('ZSCORE', KEYS[2], ARGV[5])
local others = redis.call('ZCARD', KEYS[2])
if waiting then others = others - 1 end
if free <= 0 or (not waiting and others >= free) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
  redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[4]) * 2000))
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 2000))
return 1
"""
)
RENEW = (
    NOW
    + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[1]) * 2000))
end
return 1
"""
)
WANTED = (
    NOW
    + """
local found = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local others = redis.call('ZCARD', key)
  if redis.call('ZSCORE', key, ARGV[1]) then others = others - 1 end
  found[i] = others
end
return found
"""
)
ACT = (
    NOW
    + """
local ms = math.ceil((tonumber(ARGV[2]) - now) * 1000)
if ms <= 0 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ms) then return 1 end
return 0
"""
)
STRIKE = """
if redis.call('PTTL', KEYS[2]) > 0 then return 0 end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
return n
"""
ACTIVE = (
    NOW
    + """
local found = {}
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 500)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local value, left = redis.call('GET', key), redis.call('PTTL', key)
    if value and left > 0 then
      found[#found + 1] = value
      found[#found + 1] = string.format('%.6f', now + left / 1000)
    end
  end
until cursor == '0'
return found
"""
)


class RedisThrottle:
    def __init__(self, url: str, prefix: str, timeout_s: float = 2.0) -> None:
        self.prefix = f"{prefix}:shaping:"
        # sends in flight share a few connections, waiting their turn for one rather than
        # failing (closed) when there are more sends than connections
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self.scripts = {
            name: self.client.register_script(text)
            for name, text in (
                ("turn", TURN),
                ("lease", LEASE),
                ("renew", RENEW),
                ("wanted", WANTED),
                ("act", ACT),
                ("active", ACTIVE),
                ("strike", STRIKE),
            )
        }

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except ERRORS as exc:
            raise Unavailable(f"shaping state in Redis unreachable: {exc}") from exc

    def _act_key(self, key: str, action: Action, tenant: str = "") -> str:
        suffix = f":{tenant}" if action is Action.SUSPEND_TENANT else ""
        return f"{self.prefix}act:{key}:{action.value}{suffix}"

    async def turn(self, key: str, tenant: str, pace: Pace, stage: Stage, who: str) -> Turn:
        bucket, rate = bucket_of(key, tenant, pace, stage)
        keys = [
            self._act_key(key, Action.SUSPEND),
            self._act_key(key, Action.SUSPEND_TENANT, tenant),
            self._act_key(key, Action.SLOW),
            f"{self.prefix}tat:{bucket}",
            f"{self.prefix}waiters:{key}",
        ]
        args = [str(rate), str(pace.burst), str(pace.max_wait), stage.value, who]
        verdict, seconds, wanted = await self._run(
            lambda: self.scripts["turn"](keys=keys, args=args)
        )
        verdict, left, want = _text(verdict), float(_text(seconds)), bool(int(wanted))
        if verdict == "go":
            return Turn(left, wanted=want)
        return Turn(None, left, verdict, want)

    async def lease(self, key: str, limit: int, ttl: float, who: str) -> str | None:
        lease = uuid.uuid4().hex
        keys = [f"{self.prefix}lease:{key}", f"{self.prefix}waiters:{key}"]
        args = [str(limit), lease, str(ttl), str(WANT_S), who]
        got = await self._run(lambda: self.scripts["lease"](keys=keys, args=args))
        return lease if got else None

    async def wanted(self, keys: list[str], who: str) -> set[str]:
        names = [f"{self.prefix}waiters:{key}" for key in keys]
        found = await self._run(lambda: self.scripts["wanted"](keys=names, args=[who]))
        return {key for key, value in zip(keys, found, strict=True) if int(value)}

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        if leases:
            keys = [f"{self.prefix}lease:{key}" for key, _ in leases]
            args: list[Any] = [ttl, *(lease for _, lease in leases)]
            await self._run(lambda: self.scripts["renew"](keys=keys, args=args))

    async def release(self, key: str, lease: str) -> None:
        await self._run(lambda: self.client.zrem(f"{self.prefix}lease:{key}", lease))

    async def act(self, action: ActiveAction) -> bool:
        value = json.dumps(
            {
                "key": action.key,
                "action": action.action.value,
                "rule": action.rule,
                "tenant": action.tenant,
                "factor": action.factor,
            }
        )
        keys = [self._act_key(action.key, action.action, action.tenant)]
        args = [value, f"{action.until:.6f}"]
        return bool(await self._run(lambda: self.scripts["act"](keys=keys, args=args)))

    async def active(self) -> list[ActiveAction]:
        pattern = f"{_glob_escape(self.prefix)}act:*"
        found = await self._run(lambda: self.scripts["active"](keys=[], args=[pattern]))
        actions = []
        for value, until in zip(found[::2], found[1::2], strict=True):
            item = json.loads(value)
            actions.append(
                ActiveAction(
                    item["key"],
                    Action(item["action"]),
                    item["rule"],
                    float(_text(until)),
                    item["tenant"],
                    float(item["factor"]),
                )
            )
        return sorted(actions, key=lambda a: (a.key, a.action, a.tenant))

    async def strike(self, key: str, forget_s: float) -> int:
        keys = [f"{self.prefix}strikes:{key}", self._act_key(key, Action.SUSPEND)]
        found = await self._run(lambda: self.scripts["strike"](keys=keys, args=[str(forget_s)]))
        return int(found)

    async def forgive(self, key: str) -> None:
        await self._run(lambda: self.client.delete(f"{self.prefix}strikes:{key}"))

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
