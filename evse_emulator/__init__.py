"""evse_emulator package."""
