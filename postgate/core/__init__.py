"""The pure core: vocabularies (states, kinds, reasons, scopes) and the rules that use them.

The consent gate, the circuit breaker, retry backoff, bounce classification rules, the
sending policy ("may this tenant send this kind on this channel?"), the content policy,
signed references, rendering, DKIM signing and SMS encoding/routing. Nothing here opens a
socket, a file or a database: every function is a decision over values, so it is tested
without servers and imported by every other layer.
"""
