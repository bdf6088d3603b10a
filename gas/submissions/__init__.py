"""Detector packages: format, validation, the sandbox that runs them, model stores, commitments."""
