"""The brand colours a tenant sets keep text legible (WCAG contrast)."""

from __future__ import annotations

from postgate.tenants.brand import Brand, contrast


def test_brand_colours_stay_legible() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    dark, light = Brand(1, "Acme", accent="#0b6e4f"), Brand(1, "Acme", accent="#ffd84d")
    assert dark.accent_text == "#ffffff" and light.accent_text == "#000000"
    assert dark.link == "#0b6e4f" and light.link == "#1b1f24"  # yellow links are unreadable
    for brand in (dark, light):
        assert contrast(brand.accent, brand.accent_text) >= 4.5
