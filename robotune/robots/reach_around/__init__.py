"""The built-in default task: a planar arm reaching around a post (see `task.py`)."""
