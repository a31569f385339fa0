"""A tenant and everything it owns: its sending state (blocks, status, the one answer to
"may it send?"), reputation and the circuit breaker over the database, sender domains
and DKIM keys, the data export and erasure.
"""
