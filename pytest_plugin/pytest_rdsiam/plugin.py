"""pytest plugin entry (filled in by the plugin issue)."""
