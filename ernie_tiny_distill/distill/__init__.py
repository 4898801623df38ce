"""Distillation: pure loss functions, the distiller, cached teacher outputs, teacher ensembles."""
