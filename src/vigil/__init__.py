"""Vigil: one service that ingests, records, re-serves and watches many cameras."""

__version__ = "0.1.0"
