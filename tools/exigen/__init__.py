"""exigen package."""
