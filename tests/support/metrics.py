"""Reading a scrape: Prometheus' own linter (`promtool`, Debian package `prometheus`) and the
samples of a text exposition."""

from __future__ import annotations

import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def promtool_problems(exposition: str) -> str:
    """What `promtool check metrics` says about `exposition` ("" when nothing)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/bootstrap.sh)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 or problems, f"promtool exited {result.returncode}"
    return problems


def samples(exposition: str) -> dict[str, dict[Labels, float]]:
    """Sample name → (sorted label pairs → value)."""
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def value(found: dict[str, dict[Labels, float]], name: str, **labels: str) -> float | None:
    """The value of sample `name` with exactly `labels`, or None."""
    return found.get(name, {}).get(tuple(sorted(labels.items())))
