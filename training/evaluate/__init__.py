"""Stage 4, evaluation: the routing metrics as docs/metrics.md defines them (`metrics`), a router
on held-out outcomes beside baselines (`evaluation`), paired comparisons (`comparison`), offline
replay of policies (`replay`), and the reports and plots (`report`, `plots`)."""
