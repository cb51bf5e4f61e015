"""Patronage: the VA's commissary and exchange eligibility pipeline for DMDC."""

__version__ = "0.1.0"
