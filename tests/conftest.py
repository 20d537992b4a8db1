"""Each environment is synthesized once per test session (CDK synth is slow)."""

from __future__ import annotations

import os

# Before jsii starts its node process (at the first aws_cdk import).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from collections.abc import Callable

import pytest

from infra.config.settings import load_settings
from tests.synth import Synthesized, synthesize

Synth = Callable[[str], Synthesized]
_CACHE: dict[str, Synthesized] = {}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    def get(environment: str) -> Synthesized:
        if environment not in _CACHE:
            outdir = tmp_path_factory.mktemp(f"cdk.out.{environment}")
            _CACHE[environment] = synthesize(load_settings(environment), outdir)
        return _CACHE[environment]

    return get


@pytest.fixture(scope="session", params=["dev", "prod"])
def env(request: pytest.FixtureRequest, synth: Synth) -> Synthesized:
    return synth(str(request.param))


@pytest.fixture(scope="session")
def dev(synth: Synth) -> Synthesized:
    return synth("dev")


@pytest.fixture(scope="session")
def prod(synth: Synth) -> Synthesized:
    return synth("prod")
