"""The HTTP API (FastAPI): one module per resource; ``app`` assembles the routers, ``auth``
holds the bearer-key dependencies (tenant and operator scopes).
"""
