"""Local servers that stand in for the outside world in the demo, tests and benchmarks: an
SMTP sink (aiosmtpd), an SMSC (SMPP) and an SMSAPI HTTP stand-in.
"""
