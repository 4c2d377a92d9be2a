"""Installed form of the cinder-ha Salt extension (see setup.py for the folder mapping)."""
