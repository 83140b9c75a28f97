"""Vector fields: pure functions of (state, hyper, data) -> time derivative."""

from .matrix import autodiff_field, expected_loss, vector_field

__all__ = ["vector_field", "autodiff_field", "expected_loss"]
