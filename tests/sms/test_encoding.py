"""Encoding and segmenting at every boundary, and properties over arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postgate.core.sms.encoding import (
    BASIC,
    ESCAPE,
    EXTENSION,
    Encoding,
    Policy,
    SmsTooLong,
    encode,
    from_bytes,
    is_gsm7,
    to_bytes,
)


@pytest.mark.parametrize("ch", list("éöüÉÖÜäàèù"))
def test_accents_in_the_default_alphabet_stay_gsm7(ch: str) -> None:
    assert encode(f"Sz{ch}p").encoding is Encoding.GSM7


@pytest.mark.parametrize("ch", list("áíóőúűÁÍÓŐÚŰ"))
def test_hungarian_letters_outside_gsm_force_ucs2(ch: str) -> None:
    assert encode(f"Sz{ch}p").encoding is Encoding.UCS2


def test_transliteration_keeps_hungarian_in_gsm7() -> None:
    sms = encode("Árvíztűrő tükörfúrógép „akció”", Policy.TRANSLITERATE)
    assert sms.encoding is Encoding.GSM7
    assert sms.text == 'Arviztürö tükörfurogép "akcio"'


def test_transliteration_leaves_other_scripts_in_ucs2() -> None:
    sms = encode("Привет ő", Policy.TRANSLITERATE)
    assert (sms.encoding, sms.text) == (Encoding.UCS2, "Привет ö")


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (159, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_boundaries(length: int, segments: int) -> None:
    sms = encode("a" * length)
    assert (sms.encoding, sms.segments, sms.units) == (Encoding.GSM7, segments, length)
    if segments > 1:
        assert all(len(p) == 153 for p in sms.parts[:-1])


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (69, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_boundaries(length: int, segments: int) -> None:
    sms = encode("á" * length)
    assert (sms.encoding, sms.segments) == (Encoding.UCS2, segments)


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [("€" * 80, 160, 1), ("€" * 80 + "a", 161, 2), ("a" * 159 + "€", 161, 2), ("[" * 81, 162, 2)],
)
def test_extension_characters_count_double(text: str, units: int, segments: int) -> None:
    sms = encode(text)
    assert (sms.units, sms.segments) == (units, segments)


def test_an_escape_sequence_is_never_split() -> None:
    sms = encode("a" * 152 + "€" + "b" * 10)
    assert sms.parts[0] == "a" * 152  # 152 + 2 > 153: the euro moves on whole
    assert sms.parts[1].startswith("€")
    assert all(to_bytes(p, Encoding.GSM7)[-1] != ESCAPE for p in sms.parts)


def test_a_surrogate_pair_is_never_split() -> None:
    sms = encode("x" * 66 + "😀" + "y" * 10)
    assert sms.units == 78 and sms.parts[0] == "x" * 66
    assert sms.parts[1].startswith("😀")
    assert all(len(p.encode("utf-16-be")) <= 134 for p in sms.parts)


def test_emoji_alone_at_the_single_part_limit() -> None:
    assert encode("😀" * 35).segments == 1
    assert encode("😀" * 35 + "a").segments == 2


def test_max_parts_is_enforced_with_a_clear_error() -> None:
    assert encode("a" * 306, max_parts=2).segments == 2
    with pytest.raises(SmsTooLong, match="3 gsm7 parts; at most 2"):
        encode("a" * 307, max_parts=2)


def test_wire_octets_of_gsm7_and_ucs2() -> None:
    assert to_bytes("@a€", Encoding.GSM7) == bytes([0x00, 0x61, 0x1B, 0x65])
    assert to_bytes("ő", Encoding.UCS2) == b"\x01\x51"
    assert from_bytes(bytes([0x05, 0x1B, 0x3C, 0x7C]), Encoding.GSM7) == "é[ö"


def test_summary_is_what_the_cli_prints() -> None:
    assert encode("Hello").summary() == {
        "encoding": "gsm7",
        "segments": 1,
        "chars": 5,
        "units": 5,
        "text": "Hello",
    }


gsm_chars = st.sampled_from([c for i, c in enumerate(BASIC) if i != ESCAPE] + list(EXTENSION))
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=700)


@given(st.text(alphabet=gsm_chars, min_size=1, max_size=700))
def test_gsm_text_round_trips_and_each_part_fits(text: str) -> None:
    sms = encode(text)
    assert sms.encoding is Encoding.GSM7
    assert "".join(sms.parts) == text
    limit = 160 if sms.segments == 1 else 153
    for part in sms.parts:
        octets = to_bytes(part, Encoding.GSM7)
        assert len(octets) <= limit and octets[-1] != ESCAPE
        assert from_bytes(octets, Encoding.GSM7) == part


@given(any_text, st.sampled_from(list(Policy)))
def test_any_text_splits_losslessly_within_limits(text: str, policy: Policy) -> None:
    sms = encode(text, policy)
    assert "".join(sms.parts) == sms.text
    assert sms.encoding is (Encoding.GSM7 if is_gsm7(sms.text) else Encoding.UCS2)
    if sms.encoding is Encoding.UCS2:
        limit = 140 if sms.segments == 1 else 134
        for part in sms.parts:
            octets = to_bytes(part, Encoding.UCS2)
            assert len(octets) <= limit
            assert octets.decode("utf-16-be") == part  # no half surrogate pair
    if policy is Policy.UNICODE:
        assert sms.text == text
