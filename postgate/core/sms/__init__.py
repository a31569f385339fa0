"""SMS rules (pure): GSM-7/UCS-2 encoding and segmenting, sender ids, routing by country,
opt-out keywords and what each normalised gateway status means.
"""
