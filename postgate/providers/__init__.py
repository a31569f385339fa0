"""Providers: one module per way out, behind the small interface in ``base``."""
