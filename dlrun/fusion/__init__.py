"""Fusing: several runs or search trials trained as branches of one Keras model (issue #15)."""
