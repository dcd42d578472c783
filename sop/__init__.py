"""SOP plans and steps, the content library, the planner and the delivery ledger."""
