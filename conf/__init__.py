"""dlrun config groups. A package only so that the YAML files ship inside dlrun (as dlrun.conf)."""
