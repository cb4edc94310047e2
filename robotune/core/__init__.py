"""The small, stable contracts of robotune. Nothing here imports a plugin or the deploy code."""
