"""Workers: the planner, the sender, the sweeper, the feedback listener and retention, each a
thin loop over the runtime and the domain packages.
"""
