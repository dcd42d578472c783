"""Customer groups, their members and roles, rules, notices and stages."""
