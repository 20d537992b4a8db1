"""The test suite (tests/conftest.py; the second process, tests/synth_worker.py, imports it too).

Before anything here starts jsii's runtime (at the first ``import aws_cdk``): its Node.js flags, as
app.py sets them for ``cdk synth`` (infra/jsii_node.py), so that the suite runs what users run.
"""

from infra import jsii_node

jsii_node.configure()
