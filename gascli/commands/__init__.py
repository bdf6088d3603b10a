"""Command groups of the ``gascli`` typer app, one module per group."""
