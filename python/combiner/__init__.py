"""combiner: compression with Bayesian implicit neural representations (COMBINER)."""
