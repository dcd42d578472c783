"""The event log, rollups, metric functions and the dashboard that reads them."""
