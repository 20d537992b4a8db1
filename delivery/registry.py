"""Images in ECR, through its API: the digest a tag names, the digest an environment runs, a copy from
one registry to another that keeps the digest, the scan gate, the deployed-* marks.

The digest of an image is the sha256 of its manifest's bytes (ECR user guide, image manifests; PutImage
checks ``imageDigest`` against what it computes), so a copy that puts the same manifest bytes over the
same layers is the same image: ``copy_image`` reads the manifest by digest (no format translation when
an image is pulled by digest), uploads the layers the target lacks (InitiateLayerUpload, UploadLayerPart
in consecutive parts of ECR's partSize, CompleteLayerUpload, which checks each layer's digest) and puts
the manifest with ``imageDigest``. Across accounts every call names the registry (``registryId``); the
source repository's policy admits the target's account and ECR decrypts its layers with its own grant.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from botocore.exceptions import ClientError

# Tags the deploy workflow adds after a rollout succeeded: deployed-<run id>-<run attempt>. Run ids grow
# with every run of the repository, so the newest mark names what the environment runs now. The
# registry's lifecycle keeps every image carrying one (infra/stacks/registry.py, DEPLOYED_TAG_PREFIX).
DEPLOYED_TAG = re.compile(r"deployed-(\d+)-(\d+)")

MANIFEST_MEDIA_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
]
INDEX_MEDIA_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
# ECR's layer part sizes (service quotas): at least 5 MiB but for the last part, at most 10 MiB.
MIN_PART = 5 * 1024 * 1024
MAX_PART = 10 * 1024 * 1024


class DeliveryError(Exception):
    """Stops the job with this message (``::error::`` in the workflow)."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Repository:
    """A repository in one registry: ``client`` is an ECR client of the registry's region."""

    client: Any
    name: str
    registry_id: str
    region: str

    @property
    def uri(self) -> str:
        return f"{self.registry_id}.dkr.ecr.{self.region}.amazonaws.com/{self.name}"

    def _where(self) -> dict[str, str]:
        return {"registryId": self.registry_id, "repositoryName": self.name}

    def describe(self, **image_id: str) -> dict[str, Any] | None:
        try:
            details = self.client.describe_images(**self._where(), imageIds=[image_id])["imageDetails"]
        except ClientError as error:
            if _code(error) == "ImageNotFoundException":
                return None
            raise
        return dict(details[0]) if details else None

    def images(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self.client.describe_images(
                **self._where(), filter={"tagStatus": "TAGGED"}, **({"nextToken": token} if token else {})
            )
            yield from page["imageDetails"]
            token = page.get("nextToken")
            if not token:
                return

    def manifest(self, digest: str) -> tuple[str, str]:
        """The manifest's text exactly as pushed, and its media type."""
        answer = self.client.batch_get_image(
            **self._where(), imageIds=[{"imageDigest": digest}], acceptedMediaTypes=MANIFEST_MEDIA_TYPES
        )
        if not answer["images"]:
            reasons = "; ".join(f"{f.get('failureCode')}: {f.get('failureReason')}" for f in answer.get("failures", []))
            raise DeliveryError(f"{self.uri}@{digest}: no such image ({reasons or 'not found'})")
        image = answer["images"][0]
        return str(image["imageManifest"]), str(
            image.get("imageManifestMediaType") or _media_type(image["imageManifest"])
        )

    def put(self, manifest: str, media_type: str, digest: str, tag: str | None) -> None:
        """Puts ``manifest`` (``tag``, if any); an image already there under that tag is what was asked."""
        try:
            self.client.put_image(
                **self._where(),
                imageManifest=manifest,
                imageManifestMediaType=media_type,
                imageDigest=digest,
                **({"imageTag": tag} if tag else {}),
            )
        except ClientError as error:
            if _code(error) == "ImageAlreadyExistsException":
                return
            if _code(error) == "ImageTagAlreadyExistsException":
                raise DeliveryError(
                    f"{self.uri}:{tag} names another image than {digest}; tags are immutable, so this tag cannot "
                    "move: an image of this commit was pushed here before (rebuild from a new commit)"
                ) from None
            raise


def _media_type(manifest: str) -> str:
    return str(json.loads(manifest).get("mediaType", "application/vnd.oci.image.manifest.v1+json"))


def pushed(repository: Repository, tag: str) -> str | None:
    """The digest ``tag`` names, if it was pushed: a build run again for its commit (its scan gate failed or
    timed out) reuses it, since tags are immutable and a rebuild's digest would differ anyway."""
    image = repository.describe(imageTag=tag)
    return None if image is None else str(image["imageDigest"])


def digest_of(repository: Repository, tag: str) -> str:
    digest = pushed(repository, tag)
    if digest is None:
        raise DeliveryError(f"{repository.uri}:{tag} does not exist; build it first (build-image)")
    return digest


def running(repository: Repository) -> dict[str, Any] | None:
    """The image with the newest deployed-<run>-<attempt> mark: what the environment runs now (its last
    successful deploy, promotion or rollback); None before its first."""
    best: tuple[tuple[int, int], dict[str, Any]] | None = None
    for image in repository.images():
        for tag in image.get("imageTags", []):
            match = DEPLOYED_TAG.fullmatch(tag)
            if match:
                key = (int(match[1]), int(match[2]))
                if best is None or key > best[0]:
                    best = (key, image)
    return best[1] if best else None


def version_tag(image: dict[str, Any]) -> str | None:
    """The tag an image was built under (the commit SHA): its one tag that is not a deployed-* mark."""
    tags = sorted(t for t in image.get("imageTags", []) if not DEPLOYED_TAG.fullmatch(t))
    return tags[0] if tags else None


def _blobs(manifest: str) -> tuple[list[str], list[str]]:
    """(the layers and config the manifest references, the manifests an index references)."""
    document = json.loads(manifest)
    if "manifests" in document:
        return [], [m["digest"] for m in document["manifests"]]
    layers = [layer["digest"] for layer in document.get("layers", []) if "urls" not in layer]
    config = document.get("config", {}).get("digest")
    return ([config] if config else []) + layers, []


Download = Callable[[str, IO[bytes]], None]


def _download(url: str, into: IO[bytes]) -> None:
    if not url.startswith("https://"):
        raise DeliveryError(f"refusing a layer download URL that is not HTTPS: {url[:60]}")
    with urllib.request.urlopen(url, timeout=300) as response:
        while chunk := response.read(1024 * 1024):
            into.write(chunk)


def _copy_layer(source: Repository, target: Repository, digest: str, download: Download) -> None:
    url = source.client.get_download_url_for_layer(**source._where(), layerDigest=digest)["downloadUrl"]
    with tempfile.TemporaryFile() as blob:
        download(url, blob)
        size = blob.tell()
        blob.seek(0)
        hashed = hashlib.sha256()
        while chunk := blob.read(1024 * 1024):
            hashed.update(chunk)
        if f"sha256:{hashed.hexdigest()}" != digest:
            raise DeliveryError(f"layer {digest} of {source.uri} arrived with another digest; not copied")
        upload = target.client.initiate_layer_upload(**target._where())
        part = min(max(int(upload.get("partSize") or MAX_PART), MIN_PART), MAX_PART)
        blob.seek(0)
        first = 0
        while first < size:
            data = blob.read(part)
            target.client.upload_layer_part(
                **target._where(),
                uploadId=upload["uploadId"],
                partFirstByte=first,
                partLastByte=first + len(data) - 1,  # inclusive
                layerPartBlob=data,
            )
            first += len(data)
        try:
            target.client.complete_layer_upload(**target._where(), uploadId=upload["uploadId"], layerDigests=[digest])
        except ClientError as error:
            if _code(error) != "LayerAlreadyExistsException":  # another region's job copied it meanwhile
                raise


def _copy_manifest(source: Repository, target: Repository, digest: str, tag: str | None, download: Download) -> int:
    """Copies one manifest (an index: its manifests first) and the blobs the target lacks; returns how
    many layers were uploaded."""
    manifest, media_type = source.manifest(digest)
    if hashlib.sha256(manifest.encode("utf-8")).hexdigest() != digest.removeprefix("sha256:"):
        raise DeliveryError(f"{source.uri}@{digest}: its manifest's bytes do not hash to its digest; not copied")
    layers, children = _blobs(manifest)
    uploaded = sum(_copy_manifest(source, target, child, None, download) for child in children)
    if layers:
        found = target.client.batch_check_layer_availability(**target._where(), layerDigests=layers)["layers"]
        present = {layer["layerDigest"] for layer in found if layer.get("layerAvailability") == "AVAILABLE"}
        for layer in layers:
            if layer not in present:
                _copy_layer(source, target, layer, download)
                uploaded += 1
    target.put(manifest, media_type, digest, tag)
    return uploaded


def copy_image(
    source: Repository, target: Repository, digest: str, tag: str | None, download: Download = _download
) -> int:
    """``source``'s image ``digest`` in ``target`` under the same digest (and ``tag``); returns the layers
    uploaded (0 when the target had them all, or the image)."""
    if target.describe(imageDigest=digest) is not None:
        if tag:
            manifest, media_type = target.manifest(digest)
            target.put(manifest, media_type, digest, tag)
        return 0
    return _copy_manifest(source, target, digest, tag, download)


def scan_gate(
    repository: Repository,
    digest: str,
    *,
    attempts: int = 60,
    wait: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Waits for the image's scan (scan on push) and refuses critical findings; returns the severity counts."""
    for _ in range(attempts):
        try:
            answer = repository.client.describe_image_scan_findings(
                **repository._where(), imageId={"imageDigest": digest}
            )
        except ClientError as error:
            if _code(error) != "ScanNotFoundException":
                raise
            sleep(wait)
            continue
        status = answer.get("imageScanStatus", {}).get("status")
        if status in ("IN_PROGRESS", "PENDING"):
            sleep(wait)
            continue
        if status not in ("COMPLETE", "ACTIVE"):
            description = answer.get("imageScanStatus", {}).get("description", "")
            raise DeliveryError(f"{repository.uri}@{digest}: scan {status}: {description}; not deploying")
        counts = {
            str(k): int(v) for k, v in answer.get("imageScanFindings", {}).get("findingSeverityCounts", {}).items()
        }
        if counts.get("CRITICAL", 0):
            raise DeliveryError(
                f"{repository.uri}@{digest} has {counts['CRITICAL']} critical vulnerabilities; not deploying"
            )
        return counts
    raise DeliveryError(f"{repository.uri}@{digest}: no scan result after {attempts * wait:.0f} s; not deploying")


def wait_for(
    repository: Repository,
    digest: str,
    *,
    attempts: int = 60,
    wait: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Waits until ``digest`` is in ``repository`` (ECR replication copies each push, usually within minutes)."""
    for _ in range(attempts):
        if repository.describe(imageDigest=digest) is not None:
            return
        sleep(wait)
    raise DeliveryError(
        f"{repository.uri}@{digest} has not arrived after {attempts * wait / 60:.0f} minutes: check the account "
        "stack's image replication"
    )


def mark_deployed(repositories: list[Repository], digest: str, run_id: str, run_attempt: str) -> str:
    """Adds ``deployed-<run>-<attempt>`` to the image in each repository (the same manifest: no layer)."""
    tag = f"deployed-{run_id}-{run_attempt}"
    for repository in repositories:
        manifest, media_type = repository.manifest(digest)
        repository.put(manifest, media_type, digest, tag)
    return tag
