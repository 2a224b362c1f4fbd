"""Sensors: the landing-zone upload sensor and the notification sensors."""
