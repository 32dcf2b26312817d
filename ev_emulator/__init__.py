"""ev_emulator package."""
