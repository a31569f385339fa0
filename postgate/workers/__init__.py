"""Queue runtime: the planner, the sender and the sweeper, on one base runner."""
