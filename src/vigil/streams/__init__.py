"""Streams: desired vs actual, each stream's state machine, and its supervisor."""
