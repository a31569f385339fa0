"""Prometheus metrics: the counters and histograms every layer increments, gauges read from
the database at scrape time, and the exposition (multi-process aware).
"""
