"""What every reference service shares: configuration from the environment, JSON logs, the HTTP
skeleton (liveness, readiness, graceful shutdown), and the data-store clients with IAM auth.

Copied into each image next to the service's own package (``COPY --from=servicekit``), so a service
imports it as ``servicekit`` in the image and in the tests alike.
"""
