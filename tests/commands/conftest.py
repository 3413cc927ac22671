"""The API served for real on loopback (tests/api/conftest.py) for the command-line client."""

from tests.api.conftest import api, secured_api

__all__ = ["api", "secured_api"]
