"""Detectors: one module per family; each Detector subclass registers itself by its stable name."""
