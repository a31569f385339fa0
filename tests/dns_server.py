"""A small authoritative DNS server on 127.0.0.1 (UDP and TCP) for TXT, MX, A and TLSA
records and CNAME aliases (followed as a recursive resolver would), built with dnspython:
tests publish records in it and point the resolver at it.

It also stands in for a validating resolver: answers for the names a test marks
``secure`` carry the AD bit (DNSSEC-validated), and names in ``servfail`` get SERVFAIL."""

from __future__ import annotations

import itertools
import socket
import socketserver
import struct
import threading
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A


class LocalDns:
    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.mx: dict[str, list[tuple[int, str]]] = {}
        self.a: dict[str, list[str]] = {}
        self.tlsa: dict[str, list[tuple[int, int, int, bytes]]] = {}
        self.cname: dict[str, str] = {}  # alias -> target, followed by the server
        self.secure: set[str] = set()  # names answered with the AD bit
        self.servfail: set[str] = set()  # names answered with SERVFAIL
        self.ttl = 60
        self.queries: list[str] = []
        self.typed_queries: list[tuple[str, str]] = []  # (name, type), e.g. ("x.example", "MX")
        outer = self

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                (size,) = struct.unpack("!H", self.request.recv(2))
                reply = outer.answer(self.request.recv(size))
                self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for _ in range(50):  # UDP and TCP on one port number: retry if TCP's is taken
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Tcp)
                break
            except OSError:
                self.udp.close()
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        self.udp.settimeout(0.1)
        self.running = True
        self.threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self.tcp.serve_forever, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def publish(self, name: str, value: str) -> None:
        self.txt.setdefault(name.lower().rstrip("."), []).append(value)

    def publish_mx(self, domain: str, preference: int, host: str) -> None:
        """An MX record; ``host`` "." is a null MX (RFC 7505)."""
        self.mx.setdefault(domain.lower().rstrip("."), []).append((preference, host))

    def publish_cname(self, alias: str, target: str) -> None:
        self.cname[alias.lower()] = target.lower()

    def publish_a(self, host: str, address: str = "127.0.0.1") -> None:
        self.a.setdefault(host.lower().rstrip("."), []).append(address)

    def publish_tlsa(self, name: str, usage: int, selector: int, mtype: int, data: bytes) -> None:
        """A TLSA record at ``name`` (``_25._tcp.mx.example``)."""
        self.tlsa.setdefault(name.lower().rstrip("."), []).append((usage, selector, mtype, data))

    def mark_secure(self, *names: str) -> None:
        """Answers for these names (records or their absence) come with the AD bit."""
        self.secure.update(n.lower().rstrip(".") for n in names)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        self.queries.append(name)
        self.typed_queries.append((name, dns.rdatatype.to_text(question.rdtype)))
        chain = [name]  # the name, then the CNAME targets it leads to
        while chain[-1] in self.cname and len(chain) < 8:
            chain.append(self.cname[chain[-1]])
        if all(n in self.secure for n in chain):
            response.flags |= dns.flags.AD
        if any(n in self.servfail for n in chain):
            response.flags &= ~(dns.flags.AA | dns.flags.AD)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        for alias, target in itertools.pairwise(chain):
            cname = CNAME(dns.rdataclass.IN, dns.rdatatype.CNAME, dns.name.from_text(target))
            owner = dns.name.from_text(alias)
            response.answer.append(dns.rrset.from_rdata_list(owner, self.ttl, [cname]))
        final = chain[-1]
        if self.txt.get(final) is None and not any(
            final in d for d in (self.mx, self.a, self.tlsa)
        ):
            if len(chain) == 1:
                response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        rrset = self._rrset(final, question.rdtype)
        if rrset is not None:
            response.answer.append(rrset)
        return response.to_wire()

    def _rrset(self, name: str, rdtype: int) -> dns.rrset.RRset | None:
        owner = dns.name.from_text(name)
        values = self.txt.get(name)
        if rdtype == dns.rdatatype.MX and name in self.mx:
            mxs = [
                MX(dns.rdataclass.IN, dns.rdatatype.MX, pref, dns.name.from_text(host))
                for pref, host in self.mx[name]
            ]
            return dns.rrset.from_rdata_list(owner, self.ttl, mxs)
        if rdtype == dns.rdatatype.A and name in self.a:
            addresses = [A(dns.rdataclass.IN, dns.rdatatype.A, a) for a in self.a[name]]
            return dns.rrset.from_rdata_list(owner, self.ttl, addresses)
        if rdtype == dns.rdatatype.TLSA and name in self.tlsa:
            records = [TLSA(dns.rdataclass.IN, dns.rdatatype.TLSA, *t) for t in self.tlsa[name]]
            return dns.rrset.from_rdata_list(owner, self.ttl, records)
        if rdtype == dns.rdatatype.TXT and values is not None:
            rdatas = [
                TXT(
                    dns.rdataclass.IN,
                    dns.rdatatype.TXT,
                    [v.encode()[i : i + 255] for i in range(0, len(v.encode()), 255)],
                )
                for v in values
            ]
            return dns.rrset.from_rdata_list(owner, 60, rdatas)
        return None

    def _serve_udp(self) -> None:
        while self.running:
            try:
                data, addr = self.udp.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.udp.sendto(self.answer(data), addr)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def resolver(self) -> dns.resolver.Resolver:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = ["127.0.0.1"]
        res.port = self.port
        res.lifetime = 3
        return res

    def dkim_dnsfunc(self, name: bytes, timeout: Any = 5) -> bytes:
        """dkimpy's key look-up, answered by this server."""
        try:
            answer = self.resolver().resolve(name.decode().rstrip("."), "TXT")
        except dns.resolver.NXDOMAIN:
            return b""
        return b"".join(b"".join(r.strings) for r in answer)

    def close(self) -> None:
        self.running = False
        self.tcp.shutdown()
        self.tcp.server_close()
        for thread in self.threads:
            thread.join(timeout=2)
        self.udp.close()
