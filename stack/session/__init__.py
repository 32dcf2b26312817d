"""The ISO 15118-20 session layer, sans-I/O: two machines (`SeccSession`, `EvccSession`) that share one
rulebook (`rulebook.EXCHANGES`), a state both sides derive from the messages, and typed errors."""
