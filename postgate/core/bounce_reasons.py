"""Why a mail bounced: a reason taxonomy richer than hard/soft (pure; no I/O).

The reason is read from the diagnostic *text* first, and from the RFC 3463 enhanced
status code only when the text says nothing recognisable: receivers often put a
5.1.1 over a blacklisting or a full mailbox, and the words are what they mean. Only
the dead-address reasons (the mailbox or its domain does not exist) are hard;
sender-side rejections (5.1.7/5.1.8), policy and authentication failures say nothing
about the recipient's address. The taxonomy follows sisimai's reason names, merged
into fewer buckets.
"""

from __future__ import annotations

import re
from enum import StrEnum


class BounceReason(StrEnum):
    USER_UNKNOWN = "user_unknown"  # no such mailbox (5.1.1, 5.1.3, 5.1.6)
    HOST_UNKNOWN = "host_unknown"  # no such domain, no MX, Null MX (5.1.2, 5.1.10, 5.4.4)
    MAILBOX_FULL = "mailbox_full"  # over quota (5.2.2)
    MESSAGE_TOO_BIG = "message_too_big"  # 5.2.3, 5.3.4
    POLICY_BLOCK = "policy_block"  # spam, blacklist, reputation, content (5.7.x)
    AUTH_FAILURE = "auth_failure"  # SPF, DKIM, DMARC (5.7.23-27, 5.7.5xx)
    SENDER_REJECTED = "sender_rejected"  # our envelope sender refused (5.1.7, 5.1.8)
    RATE_LIMITED = "rate_limited"  # too many, throttled (4.7.28, 421)
    EXPIRED = "expired"  # given up after retrying (4.4.7)
    NETWORK_ERROR = "network_error"  # connection, DNS timeout, loops (4.4.x)
    SUSPENDED_ACCOUNT = "suspended_account"  # exists, disabled or inactive (5.2.1)
    OTHER = "other"


DEAD_ADDRESS_REASONS = frozenset({BounceReason.USER_UNKNOWN, BounceReason.HOST_UNKNOWN})
ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

R = BounceReason
# First match wins: the specific (authentication, sender, rate) before the general; a
# connection failure before the policy words ("refused") its reply may contain.
TEXT_RULES: tuple[tuple[BounceReason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            R.AUTH_FAILURE,
            r"\b[45]\.7\.(2[3-7]|5\d\d)\b|\bspf\b|\bdkim\b|dmarc|domainkeys|sender policy framework"
            r"|unauthenticated|not authenticated|authentication (check |level |information )?"
            r"|required authentication|fails? to authenticate|authentication[- ](fail|requir)",
        ),
        (
            R.SENDER_REJECTED,
            r"\b[45]\.1\.[78]\b|sender address rejected|sender (address )?(is )?(invalid|unknown|"
            r"rejected|denied|refused|blocked)|rejected after mail from|mail from.{0,80}"
            r"(rejected|refused)|bad sender|sender (verify|verification) failed|domain of "
            r"sender address|sender domain (must|does not|not found)|invalid sender|"
            r"unknown sender|envelope sender",
        ),
        (
            R.RATE_LIMITED,
            r"\b4\.7\.28\b|rate[- ]?limit|too many (connections|concurrent|messages (from|in a|"
            r"per|sent)|mails? from|e-?mails? from|recipients|sessions|smtp|sending|errors|"
            r"invalid recipients)|throttl|sending (rate|limit|quota)|temporarily deferred|"
            r"unexpected volume|exceeded .{0,40}(rate|sending|connection) (limit|quota)|"
            r"frequency limit|receiving (rate|limit)|limit (of|on) (messages|connections)|"
            r"\bTS0\d\b|\bRP-00\d\b",
        ),
        (
            R.HOST_UNKNOWN,
            r"host (or domain name )?not found|domain (name )?(not found|nonexistent|not exist)|"
            r"no such domain|domain (does not|doesn'?t|doesnt) exist|remote domain doesn'?t exist|"
            r"unknown (domain|host)|host unknown|invalid domain|nxdomain|name or service not "
            r"known|does not accept (e-?)?mail|accepts? no (e-?)?mail|null mx|no mx (record|host)|"
            r"unrouteable mail domain|dns lookup failure|domain .{0,60}has no (mx|mail)|"
            r"unable to resolve|couldn'?t find any host|bad destination system|no valid mx|"
            r"all relevant mx records point|domain is not (configured|valid)|"
            r"non-?existent (domain|host)|not a known domain|no mail exchanger",
        ),
        (
            R.USER_UNKNOWN,
            r"user unknown|unknown user|user(name)? (not found|does not exist|doesn'?t exist)|"
            r"no such (user|mailbox|recipient|account|address|person)|unknown (recipient|"
            r"address|mailbox|local[- ]part)|mailbox (not found|unavailable|does not exist|"
            r"doesn'?t exist|is unavailable|not available|unknown|name not allowed)|recipient "
            r"(not found|unknown|does not exist|invalid|is not valid)|invalid (mailbox|"
            r"recipient|address|user)|(address|account|mailbox|recipient) (that you tried to "
            r"reach |you tried to reach )?(does not exist|doesn'?t exist|no longer exists|"
            r"is (invalid|unknown|not valid|no longer (valid|active|available)))|no mailbox "
            r"here|not our customer|unrouteable address|not a valid (mailbox|user|recipient|"
            r"address)|doesn'?t have an? .{0,30}account|account (has been )?(deleted|"
            r"terminated|closed|removed)|not listed in (the )?(domino directory|public name "
            r"& address book)|no longer (exists|in use|with us|at this|valid|active)|bad "
            r"destination mailbox|recipient address rejected: access denied|user (is )?not "
            r"(here|known|existing)|not exist(ing)? (user|mailbox|account)|"
            r"nonexistent (user|mailbox|account|recipient)|no account by that name|unknown or"
            r" illegal alias|addressee unknown|user doesn'?t exist|could not be found in the "
            r"(recipient|directory)|wasn'?t found at|does not have a mailbox|not a known user|"
            r"nicht vorhanden|unbekannt|existiert nicht|n'existe pas|inconnu|nem l[ée]tez|"
            r"ismeretlen (c[íi]mzett|felhaszn[áa]l)|не существует|нет такого|"
            r"ディレクトリのリストにありません",
        ),
        (
            R.SUSPENDED_ACCOUNT,
            r"\b(account|mailbox|user|recipient|address)( account)? (is |has been |was )?"
            r"(temporarily )?(disabled|suspended|deactivated|inactive|locked|frozen|blocked "
            r"by (the )?(owner|user)|expired|limited|not active)|inactive (user|account|mailbox)"
            r"|account is not (enabled|active)|suspended (account|mailbox)|mailbox is "
            r"(inactive|disabled)|usuario (no|in)activo|(account|mailbox) (that )?you tried to "
            r"reach is (disabled|inactive|suspended|deactivated)",
        ),
        (
            R.MAILBOX_FULL,
            r"mail ?box (is )?(full|over|exceeded|has exceeded|size limit)|over (the |his |her "
            r"|their )?(storage |disk |mailbox )?quota|quota (exceeded|full|limit)|exceeded "
            r"(the |his |her |their )?(storage|disk|mailbox|quota)|disk quota|insufficient "
            r"(disk |system )?(space|storage)|out of (storage|disk space)|storage (space |"
            r"quota |allocation )?(is )?(full|exceeded)|user is over|folder is full|account is "
            r"full|too much mail data|full mailbox|mailbox full|mailbox is full|postfach "
            r"(ist )?voll|bo[iî]te (aux lettres )?(est )?pleine|megtelt|tele van|переполнен|"
            r"mailbox is full|mailbox size|exceeds? (their |the )?(mailbox|storage)|"
            r"(mail ?file|mailbox)( quota)? (is full|has exceeded|exceeds)|exceeded its quota",
        ),
        (
            R.MESSAGE_TOO_BIG,
            r"message (size )?(is )?too (big|large)|message size exceeds|exceeds? (the )?"
            r"(maximum|max|fixed|allowed)( message)? size|size (limit )?exceeded|message "
            r"length exceeds|message too long|mail size|too large|size of (the )?message|"
            r"message exceeds (the )?(maximum|size)|exceeds size limit|message size limit",
        ),
        (
            R.EXPIRED,  # given up after retrying, whatever the last attempt met
            r"\b[45]\.4\.7\b|expired|could not (be )?deliver(ed)? (for|in|within) |not (been )?"
            r"delivered (for|in|within)|retry (time|timeout|period)|delivery time|too long in "
            r"(the )?queue|queue(d)? too long|unable to deliver in|time(d)? ?out (waiting|in "
            r"queue)|not going to try again|failed \d+ attempts",
        ),
        (
            R.NETWORK_ERROR,
            r"\b[45]\.4\.[0-6]\b|connection (timed out|refused|reset|lost|closed|dropped)|timed "
            r"out|timeout|no route to host|(network|host) (is )?unreachable|could not connect|"
            r"unable to connect|couldn'?t connect|connect to .{1,80} failed|lost connection|"
            r"hop count|mail loop|loops back|too many hops|routing loop|tls (handshake )?"
            r"(fail|error)|temporary (dns|lookup) (failure|error)|dns (error|failure|timeout)|"
            r"servfail|unable to route",
        ),
        (
            R.POLICY_BLOCK,
            r"spam|block ?list|blacklist|black list|deny ?list|blocked|\brbl\b|dnsbl|spamhaus|"
            r"spamcop|barracuda|reputation|policy|unsolicited|bulk mail|junk|virus|malware|"
            r"phish|prohibited|banned|not allowed|not permitted|refused|access denied|denied|"
            r"administrative prohibition|content (rejected|filter)|filtered|suspicious|"
            r"listed (at|on|in|by)|rejected (by|for|due|because|as)|message (was )?rejected|"
            r"looks like|forbidden|rejected|high probability|scor(e|ing)|reject(ed)? by|"
            r"not accepting (e-?)?mail from|unable to relay|relay(ing)? (access )?(denied|not "
            r"permitted)|not permitted to relay|allowed rcpthosts",
        ),
        (
            R.EXPIRED,  # the delay words, when no cause is named
            r"delivery (has been )?delayed|has been delayed|delayed|still (undelivered|trying|"
            r"not delivered)|will (keep|continue) (trying|to try)",
        ),
    )
)

STATUS_REASONS: dict[str, BounceReason] = {
    "1.1": R.USER_UNKNOWN,
    "1.3": R.USER_UNKNOWN,
    "1.6": R.USER_UNKNOWN,
    "1.2": R.HOST_UNKNOWN,
    "1.10": R.HOST_UNKNOWN,
    "4.4": R.HOST_UNKNOWN,
    "1.7": R.SENDER_REJECTED,
    "1.8": R.SENDER_REJECTED,
    "2.1": R.SUSPENDED_ACCOUNT,
    "2.2": R.MAILBOX_FULL,
    "3.1": R.MAILBOX_FULL,
    "2.3": R.MESSAGE_TOO_BIG,
    "3.4": R.MESSAGE_TOO_BIG,
    "4.7": R.EXPIRED,
    "4.1": R.NETWORK_ERROR,
    "4.2": R.NETWORK_ERROR,
    "4.3": R.NETWORK_ERROR,
    "4.6": R.NETWORK_ERROR,
    "4.0": R.NETWORK_ERROR,
    "5.3": R.RATE_LIMITED,
    "7.28": R.RATE_LIMITED,
}


def status_in(text: str) -> str:
    """The first RFC 3463 enhanced status code written in ``text``, else ""."""
    match = ENHANCED.search(text)
    return ".".join(match.groups()) if match else ""


def from_status(status: str) -> BounceReason:
    """The reason an enhanced status code alone stands for (OTHER when it says nothing)."""
    match = ENHANCED.fullmatch(status.strip())
    if not match:
        return R.OTHER
    subject, detail = int(match.group(2)), int(match.group(3))
    key = f"{subject}.{detail}"
    if key in STATUS_REASONS:
        return STATUS_REASONS[key]
    if subject == 7:
        return R.AUTH_FAILURE if 23 <= detail <= 27 or detail >= 500 else R.POLICY_BLOCK
    return R.OTHER


def from_text(text: str) -> BounceReason | None:
    """The reason the diagnostic words give, else None."""
    for found, pattern in TEXT_RULES:
        if pattern.search(text):
            return found
    return None


def reason(status: str, text: str = "") -> BounceReason:
    """The bounce reason of a status code and its diagnostic text: the text decides when
    it is recognisable, the status only when the text is silent."""
    if text:
        said = from_text(text[:4000])
        if said is not None:
            return said
    return from_status(status or status_in(text))


def is_hard(found: BounceReason | str, action: str = "failed") -> bool:
    """Hard means the address is dead: only the dead-address reasons, and never for a
    delay warning (the MTA is still trying)."""
    return action != "delayed" and found in DEAD_ADDRESS_REASONS
