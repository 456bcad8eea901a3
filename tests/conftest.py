"""Suite-wide plugins (each in its own module)."""

pytest_plugins = ["reason_coverage"]
