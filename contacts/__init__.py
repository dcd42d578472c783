"""Contacts, staff, follow relations, tags, member tiers, points and channel codes."""
