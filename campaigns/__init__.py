"""Fission and promotion campaigns, orders, costs and their attribution."""
