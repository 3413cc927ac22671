"""Logging, metrics and tracing: how Vigil tells operators what it is doing."""
