"""Dagster-free building blocks: decade rules, media probing, stores, the Lance warehouse, Ray."""
