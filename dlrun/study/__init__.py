"""Studies: many ordinary runs (contenders x seeds), read back and compared."""
