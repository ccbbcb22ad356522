"""Pipeline stages: Dagster-free classes with setup()/process(), runnable in Ray workers."""
