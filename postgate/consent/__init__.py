"""Consent records and proofs, suppression, the audience and the consent gate."""
