"""Graph- and XLA-friendly ops behind plain functions (raw TF lives here)."""
