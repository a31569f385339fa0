"""The SMS channel: encoding and segmenting, sender ids, routing, opt-out keywords."""
