"""Wire protocols between GAS nodes (Epistula v2 request signing)."""
