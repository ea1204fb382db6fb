"""Results: the run directory, atomic writes, tables and plots."""
