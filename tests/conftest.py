"""Shared fixtures: the database and Redis are the real servers the run was started with."""
