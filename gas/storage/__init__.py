"""Storage helpers shared by the library and the daemons (crash-safe files)."""
