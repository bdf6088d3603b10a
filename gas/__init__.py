"""GAS node library: scoring, chain access, protocol, submissions, benchmark engine.

Nothing in this package starts a server or reads the process environment at import time.
"""

__version__ = "0.1.0"
