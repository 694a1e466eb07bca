"""Suite-wide configuration."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# The package's own pytest plugin (the `cyberun_server` fixture) is loaded
# from here rather than through its entry point (disabled by `-p no:cyberun`
# in pyproject.toml): an entry-point plugin is imported before coverage
# starts, which would hide the package's import-time lines from the report.
# Users get it through the entry point; tests/test_docs.py runs a test file
# in a fresh pytest to check that path.
pytest_plugins = ["pytester", "cyberun.testing._pytest_plugin"]

# The machine is shared and noisy: hypothesis must not fail a test because
# one example happened to run slowly.
settings.register_profile("cyberun", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cyberun")
