"""Fixtures shared by every test in the workspace (see balans_devstack.pytest_plugin)."""

pytest_plugins = ["balans_devstack.pytest_plugin"]
