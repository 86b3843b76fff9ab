"""Scenarios: steps and expectations run against a lab, with evidence on failure."""
