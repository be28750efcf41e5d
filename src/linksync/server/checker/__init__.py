"""Checking URLs: the checker, its URL schemes, politeness, the network
policy, and the service that runs the schedule."""
