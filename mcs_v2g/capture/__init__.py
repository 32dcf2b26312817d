"""Captures of V2G communication: the recording model, pcapng writing and reading, TLS 1.3 decryption with a
key log, a decoded timeline of messages and an offline check of it against the -20 rulebook."""
