"""CDK's template validation engine, started while Python does work that needs no jsii call.

Every ``cdk synth`` checks its templates with CDK's built-in CloudFormation validation
(``CloudFormationValidatePlugin``: a WebAssembly engine holding every resource schema and CDK's own
rules). Loading aws-cdk-lib into the jsii runtime and starting that engine are the largest fixed costs
of a synth (about 0.7 s and 1.5 s of the runtime's one thread), and CDK starts the engine only when
``app.synth()`` reaches validation. Meanwhile the Python side has about a second of work of its own:
importing the settings' models and the stacks' modules (aws-cdk-lib's Python bindings of EC2, EKS,
RDS, ...), reading and validating the settings, checking every service's Helm values. :func:`start`
loads the assemblies and creates the plugin on a background thread so the two overlap; the plugin is
then registered explicitly (:func:`infra.compliance.packs.register_rule_packs`),
which is exactly the check CDK would otherwise register itself (the same engine, its default rules
included; registering one replaces CDK's own instance, it does not add a second run).

The jsii runtime is not thread safe: between :func:`start` and :meth:`WarmingEngine.plugin` the calling
thread must make no jsii call (create, invoke or load). The thread loads every assembly the app uses
(``import aws_cdk``, ``import cdk_nag``) first: an import of an aws-cdk-lib module on the calling thread
waits for that import to finish (Python's import lock) and is pure Python afterwards. Enter jsii's
packages only that way while the thread runs: importing one of jsii's inner modules first
(``jsii._kernel...``) makes a circular import across the two threads, which Python can answer with
"partially initialized module". tests/test_speed.py checks that this window makes no call to the
runtime from the calling thread.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_cdk import CloudFormationValidatePlugin


class WarmingEngine:
    """The validation plugin being created on a background thread."""

    def __init__(self) -> None:
        self._plugin: CloudFormationValidatePlugin | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._create, name="cloud-ops-validation-engine", daemon=True)
        self._thread.start()

    def _create(self) -> None:
        try:
            # The assemblies (jsii "load" calls): aws-cdk-lib with its dependencies, and cdk-nag.
            import cdk_nag  # noqa: F401
            from aws_cdk import CloudFormationValidatePlugin

            self._plugin = CloudFormationValidatePlugin()
        except BaseException as error:  # re-raised on the main thread by plugin()
            self._error = error

    def plugin(self) -> CloudFormationValidatePlugin:
        """Waits for the engine; from here on the caller may use jsii again."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._plugin is not None
        return self._plugin


def start() -> WarmingEngine | None:
    """Loads the app's jsii assemblies and starts the engine, on a background thread.

    None when the synth runs without CDK's validation (``cdk synth --no-validation`` sets
    ``CDK_VALIDATION=false``): registering the plugin explicitly would turn it back on.
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        return None
    return WarmingEngine()
