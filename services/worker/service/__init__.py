"""The worker reference service: a job loop over its own database schema, no ingress."""
