"""Persistence: the engine, the schema (SQLModel tables, one module per area under
``store.models``), Core ``Table`` objects for hot paths and dialect helpers. Depends on the
core only.
"""
