"""DANE's pure parts (``core/dane.py``): which TLSA records are usable, the SPKI taken
from a certificate, DANE-EE and DANE-TA matching; and which rule governs a host's TLS."""

from __future__ import annotations

import datetime as dt

import pytest

from postgate.core import dane
from postgate.core.dane import Mismatch, Tlsa
from postgate.core.mta_sts import Policy
from postgate.providers.dane import Required
from postgate.providers.mx import governing
from tests.providers.dane_certs import issue, tlsa_data

NOW = dt.datetime.now(dt.UTC)


def test_only_dane_ee_and_dane_ta_with_known_parameters_are_usable() -> None:
    records = [
        Tlsa(3, 1, 1, b"a"),
        Tlsa(2, 0, 2, b"b"),
        Tlsa(3, 0, 0, b"c"),
        Tlsa(1, 1, 1, b"pkix-ee"),
        Tlsa(0, 0, 1, b"pkix-ta"),
        Tlsa(3, 2, 1, b"selector"),
        Tlsa(3, 1, 3, b"matching"),
        Tlsa(4, 1, 1, b"usage"),
    ]
    assert dane.usable(records) == tuple(records[:3])
    assert not dane.matches(Tlsa(1, 1, 1, b"x"), b"")


@pytest.mark.parametrize("rsa_key", [False, True])
def test_the_spki_is_the_one_encoded_in_the_certificate(rsa_key: bool) -> None:
    cert = issue("mx.a.example", rsa_key=rsa_key)
    assert dane.spki(cert.der) == cert.spki
    with pytest.raises((ValueError, IndexError)):
        dane.spki(cert.der[:40])


def test_dane_ee_matches_the_leaf_without_name_or_expiry_checks() -> None:
    expired = issue("somebody.else.example", hours=-1)
    for selector, mtype in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]:
        record = Tlsa(3, selector, mtype, tlsa_data(expired, selector, mtype))
        assert dane.matches(record, expired.der)
        assert dane.authenticate([record], [expired.der], ["mx.a.example"], NOW) == "DANE-EE"
    other = issue("mx.a.example")
    with pytest.raises(Mismatch, match="no certificate of the chain"):
        dane.authenticate([Tlsa(3, 1, 1, tlsa_data(other, 1, 1))], [expired.der], ["x"], NOW)
    with pytest.raises(Mismatch, match="no certificate"):
        dane.authenticate([Tlsa(3, 1, 1, b"")], [], ["x"], NOW)


def test_dane_ta_needs_the_anchor_in_the_chain_a_valid_leaf_and_a_name() -> None:
    ca = issue("test CA", ca=True)
    intermediate = issue("test intermediate", issuer=ca, ca=True)
    leaf = issue("mx.a.example", "a.example", issuer=intermediate)
    chain = [leaf.der, intermediate.der, ca.der]
    on_ca = Tlsa(2, 0, 1, tlsa_data(ca, 0, 1))
    on_intermediate = Tlsa(2, 1, 2, tlsa_data(intermediate, 1, 2))
    assert dane.authenticate([on_ca], chain, ["mx.a.example"], NOW) == "DANE-TA"
    assert dane.authenticate([on_intermediate], chain[:2], ["mx.a.example"], NOW) == "DANE-TA"
    # the destination domain is a reference identifier too
    assert dane.authenticate([on_ca], chain, ["mx.hidden.example", "a.example"], NOW) == "DANE-TA"
    with pytest.raises(Mismatch, match=r"not valid for mx\.b\.example"):
        dane.authenticate([on_ca], chain, ["mx.b.example"], NOW)
    with pytest.raises(Mismatch, match="no certificate of the chain"):
        dane.authenticate([on_ca], chain[:2], ["mx.a.example"], NOW)  # CA not presented
    expired = issue("mx.a.example", issuer=ca, hours=-1)
    with pytest.raises(Mismatch, match="expired"):
        dane.authenticate([on_ca], [expired.der, ca.der], ["mx.a.example"], NOW)
    stranger = issue("mx.a.example", issuer=issue("other CA", ca=True))
    with pytest.raises(Mismatch):  # a chain that does not lead to the anchor
        dane.authenticate([on_ca], [stranger.der, ca.der], ["mx.a.example"], NOW)
    # a DANE-TA record on the leaf itself: still checked for the name
    on_leaf = Tlsa(2, 0, 1, tlsa_data(leaf, 0, 1))
    assert dane.authenticate([on_leaf], chain, ["mx.a.example"], NOW) == "DANE-TA"
    with pytest.raises(Mismatch):
        dane.authenticate([on_leaf], chain, ["mx.b.example"], NOW)


def test_dane_governs_a_host_with_usable_records_before_mta_sts() -> None:
    enforce, testing = Policy("enforce", ("mx.a.example",), 60), Policy("testing", ("x",), 60)
    usable = Required("mx.a.example", "a.example", (Tlsa(3, 1, 1, b"x"),))
    unusable = Required("mx.a.example", "a.example", ())
    assert governing(usable, enforce) is usable
    assert governing(unusable, enforce) is enforce  # checks more than TLS alone
    assert governing(unusable, testing) is unusable
    assert governing(unusable, None) is unusable
    assert governing(None, testing) is testing
    assert governing(None, None) is None
