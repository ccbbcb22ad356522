"""Configuration: every setting (read at run time), where state lives, the model registry."""
