"""What the delivery workflows do once they hold an AWS role: resolve, copy, scan-gate and mark images,
talk to the clusters, plan a push and pick a rollback. Run as ``python -m delivery <command>`` (see
``__main__``) with boto3 and PyYAML only (``delivery/requirements.txt``, pinned by hash), and tested here
against in-memory registries (tests/test_delivery.py).

The workflows call it instead of the AWS CLI and jq: every runner, GitHub-hosted or self-hosted, then
needs Python, kubectl and helm, all installed pinned by ``.github/actions/deploy-tools``.
"""
