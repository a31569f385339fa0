"""Campaigns, the delivery state machine, rendering and everything that leaves the building."""
