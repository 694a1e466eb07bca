"""Suite-wide configuration."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# The machine is shared and noisy: hypothesis must not fail a test because
# one example happened to run slowly.
settings.register_profile("cyberun", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cyberun")
