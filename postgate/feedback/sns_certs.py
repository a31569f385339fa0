"""SNS signing certificates, fetched from an allowed host only and cached.

A certificate is fetched once per URL (the URL names the key: SNS rotates keys by
publishing a new URL) and kept for ``TTL_S`` or until it expires, whichever is sooner,
at most ``MAX_CACHED`` of them. The fetch has a timeout, follows no redirects and reads
at most ``MAX_BYTES``; a certificate that is not valid now is refused.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from cryptography import x509

from postgate.feedback.sns import SnsError, allowed_url

TTL_S = 24 * 3600.0
MAX_CACHED = 64
MAX_BYTES = 64 * 1024
TIMEOUT_S = 5.0


class CertificateUnavailable(RuntimeError):
    """The certificate host did not answer: the request should be retried later."""


class Certificates:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._cached: OrderedDict[str, tuple[float, x509.Certificate]] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = 0  # how many times a certificate was downloaded

    def get(self, url: str, allowed: Sequence[str]) -> x509.Certificate:
        """The certificate at ``url``; :class:`SnsError` (``cert_host``, ``certificate``) when
        it may not or cannot be used, :class:`CertificateUnavailable` when the host is down."""
        if not allowed_url(url, allowed):
            raise SnsError("cert_host", "SigningCertURL is not on an allowed host over https")
        now = time.monotonic()
        with self._lock:
            hit = self._cached.get(url)
            if hit is not None and hit[0] > now:
                self._cached.move_to_end(url)
                return hit[1]
        certificate = self._fetch(url)
        expires = certificate.not_valid_after_utc.timestamp() - time.time()
        with self._lock:
            self._cached[url] = (now + min(self.ttl_s, max(expires, 0.0)), certificate)
            while len(self._cached) > MAX_CACHED:
                self._cached.popitem(last=False)
        return certificate

    def _fetch(self, url: str) -> x509.Certificate:
        try:
            with (
                httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as http,
                http.stream("GET", url) as reply,
            ):
                if reply.status_code != 200:
                    raise CertificateUnavailable(f"{url} answered {reply.status_code}")
                body = b""
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise SnsError("certificate", "the signing certificate is too large")
        except httpx.HTTPError as exc:
            raise CertificateUnavailable(f"{url}: {exc}") from exc
        self.fetches += 1
        try:
            certificate = x509.load_pem_x509_certificate(body)
        except ValueError:
            raise SnsError(
                "certificate", "SigningCertURL does not serve a PEM certificate"
            ) from None
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsError("certificate", "the signing certificate is not valid now")
        return certificate
