"""postgate: multi-tenant email and SMS campaign delivery behind a consent gate."""

__version__ = "0.1.0"
