"""CDK's template validation engine, started while Python does work that needs no jsii call.

Every ``cdk synth`` checks its templates with CDK's built-in CloudFormation validation
(``CloudFormationValidatePlugin``: a WebAssembly engine holding every resource schema and CDK's own
rules). Starting that engine is the largest fixed cost of a synth: about 2.5 s of the jsii runtime's one
thread, which CDK spends only when ``app.synth()`` reaches validation. Until then that thread waits for
Python, and the Python side has about a second of work of its own first: importing the stacks'
modules (aws-cdk-lib's Python bindings of EC2, EKS, RDS, ...), reading and validating the settings,
checking every service's Helm values. :func:`start` creates the plugin on a background thread so the
two overlap; the plugin is then registered explicitly (:func:`infra.compliance.packs.register_rule_packs`),
which is exactly the check CDK would otherwise register itself (the same engine, its default rules
included; registering one replaces CDK's own instance, it does not add a second run).

The jsii runtime is not thread safe: between :func:`start` and :meth:`WarmingEngine.plugin` the calling
thread must make no jsii call (create, invoke or load). :func:`start` loads every assembly the app uses
before the thread starts, so that importing the app's modules afterwards is pure Python;
tests/test_speed.py checks that this window makes no call to the runtime.
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
    """Loads the app's jsii assemblies, then starts the engine on a background thread.

    None when the synth runs without CDK's validation (``cdk synth --no-validation`` sets
    ``CDK_VALIDATION=false``): registering the plugin explicitly would turn it back on.
    """
    if os.environ.get("CDK_VALIDATION") == "false":
        return None
    # The assemblies (jsii "load" calls): aws-cdk-lib with its dependencies, and cdk-nag.
    import aws_cdk  # noqa: F401
    import cdk_nag  # noqa: F401

    return WarmingEngine()
