"""Real peers (Josev) run beside the project, each in its own venv, as test oracles."""
