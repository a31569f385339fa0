"""A campaign from acceptance to finish: the content review, the canary slice, pause /
resume / cancel, progress, and the delivery rows' claim and outcome writes.
"""
