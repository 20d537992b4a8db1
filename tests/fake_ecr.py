"""An in-memory ECR registry with the API calls delivery/registry.py makes, and ECR's documented checks:
PutImage computes the digest of the manifest bytes and checks ``imageDigest``, refuses a manifest whose
layers are missing and a tag that names another image; CompleteLayerUpload checks the layer's digest;
UploadLayerPart takes consecutive parts of at most 10 MiB (ECR's service quotas)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


def _error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "fake")


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass
class Store:
    blobs: dict[str, bytes] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest -> manifest, media type, tags
    scans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # digest -> scan answers, in turn


class FakeEcr:
    """One region's registries (one per account), shared by the clients of that region."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.repositories: dict[tuple[str, str], Store] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.part_size = 5 * 1024 * 1024

    def store(self, registry: str, name: str) -> Store:
        return self.repositories.setdefault((registry, name), Store())

    # --- what a test sets up -------------------------------------------------------------------------

    def push(self, registry: str, name: str, layers: list[bytes], tags: list[str], *, index: bool = False) -> str:
        store = self.store(registry, name)
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": len(store.images)}).encode()
        for blob in [config, *layers]:
            store.blobs[sha(blob)] = blob
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config)},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b), "size": len(b)}
                    for b in layers
                ],
            },
            indent=3,  # any bytes: the digest is of these exactly
        )
        digest = sha(manifest.encode())
        store.images[digest] = {"manifest": manifest, "media": "application/vnd.oci.image.manifest.v1+json", "tags": []}
        if index:
            outer = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest}],
                }
            )
            outer_digest = sha(outer.encode())
            store.images[outer_digest] = {
                "manifest": outer,
                "media": "application/vnd.oci.image.index.v1+json",
                "tags": list(tags),
            }
            return outer_digest
        store.images[digest]["tags"] = list(tags)
        return digest

    # --- the API -------------------------------------------------------------------------------------

    def describe_images(self, registryId: str, repositoryName: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("describe_images")
        store = self.store(registryId, repositoryName)
        if "imageIds" in kwargs:
            (wanted,) = kwargs["imageIds"]
            for digest, image in store.images.items():
                if wanted.get("imageDigest") == digest or wanted.get("imageTag") in image["tags"]:
                    return {"imageDetails": [{"imageDigest": digest, "imageTags": list(image["tags"])}]}
            raise _error("ImageNotFoundException")
        tagged = [{"imageDigest": d, "imageTags": list(i["tags"])} for d, i in store.images.items() if i["tags"]]
        # Two pages, as a real registry pages.
        start = int(kwargs.get("nextToken") or 0)
        page = tagged[start : start + 2]
        more = {"nextToken": str(start + 2)} if start + 2 < len(tagged) else {}
        return {"imageDetails": page, **more}

    def batch_get_image(self, registryId: str, repositoryName: str, imageIds: list[dict[str, str]], **_: Any) -> Any:
        store = self.store(registryId, repositoryName)
        (wanted,) = imageIds
        image = store.images.get(wanted["imageDigest"])
        if image is None:
            return {
                "images": [],
                "failures": [{"failureCode": "ImageNotFound", "failureReason": "Requested image not found"}],
            }
        return {
            "images": [{"imageManifest": image["manifest"], "imageManifestMediaType": image["media"]}],
            "failures": [],
        }

    def batch_check_layer_availability(self, registryId: str, repositoryName: str, layerDigests: list[str]) -> Any:
        store = self.store(registryId, repositoryName)
        return {
            "layers": [{"layerDigest": d, "layerAvailability": "AVAILABLE"} for d in layerDigests if d in store.blobs],
            "failures": [
                {"layerDigest": d, "failureCode": "MissingLayerDigest"} for d in layerDigests if d not in store.blobs
            ],
        }

    def get_download_url_for_layer(self, registryId: str, repositoryName: str, layerDigest: str) -> Any:
        self.calls.append("get_download_url_for_layer")
        if layerDigest not in self.store(registryId, repositoryName).blobs:
            raise _error("LayerInaccessibleException")
        return {"downloadUrl": f"https://fake/{self.region}/{registryId}/{repositoryName}/{layerDigest}"}

    def initiate_layer_upload(self, registryId: str, repositoryName: str) -> Any:
        upload = f"upload-{len(self.uploads)}"
        self.uploads[upload] = {"where": (registryId, repositoryName), "data": b""}
        return {"uploadId": upload, "partSize": self.part_size}

    def upload_layer_part(  # noqa: PLR0917 (ECR's keyword names, called by keyword)
        self,
        registryId: str,
        repositoryName: str,
        uploadId: str,
        partFirstByte: int,
        partLastByte: int,
        layerPartBlob: bytes,
    ) -> Any:
        upload = self.uploads[uploadId]
        if partFirstByte != len(upload["data"]) or partLastByte - partFirstByte + 1 != len(layerPartBlob):
            raise _error("InvalidLayerPartException")
        if len(layerPartBlob) > 10 * 1024 * 1024:
            raise _error("InvalidParameterException", "layer part too large")
        upload["data"] += layerPartBlob
        self.calls.append("upload_layer_part")
        return {"lastByteReceived": partLastByte}

    def complete_layer_upload(
        self, registryId: str, repositoryName: str, uploadId: str, layerDigests: list[str]
    ) -> Any:
        upload = self.uploads.pop(uploadId)
        (digest,) = layerDigests
        if sha(upload["data"]) != digest:
            raise _error("InvalidLayerException")
        store = self.store(registryId, repositoryName)
        if digest in store.blobs:
            raise _error("LayerAlreadyExistsException")
        store.blobs[digest] = upload["data"]
        return {"layerDigest": digest}

    def put_image(  # noqa: PLR0917 (ECR's keyword names, called by keyword)
        self,
        registryId: str,
        repositoryName: str,
        imageManifest: str,
        imageManifestMediaType: str,
        imageDigest: str | None = None,
        imageTag: str | None = None,
    ) -> Any:
        self.calls.append("put_image")
        store = self.store(registryId, repositoryName)
        digest = sha(imageManifest.encode())
        if imageDigest is not None and imageDigest != digest:
            raise _error("ImageDigestDoesNotMatchException")
        document = json.loads(imageManifest)
        for child in document.get("manifests", []):
            if child["digest"] not in store.images:
                raise _error("ReferencedImagesNotFoundException")
        needed = [layer["digest"] for layer in document.get("layers", [])] + (
            [document["config"]["digest"]] if "config" in document else []
        )
        if any(d not in store.blobs for d in needed):
            raise _error("LayersNotFoundException")
        for other, image in store.images.items():
            if imageTag in image["tags"]:
                raise _error("ImageAlreadyExistsException" if other == digest else "ImageTagAlreadyExistsException")
        image = store.images.setdefault(
            digest, {"manifest": imageManifest, "media": imageManifestMediaType, "tags": []}
        )
        if imageTag:
            image["tags"].append(imageTag)
        return {"image": {"imageId": {"imageDigest": digest}}}

    def describe_image_scan_findings(self, registryId: str, repositoryName: str, imageId: dict[str, str]) -> Any:
        store = self.store(registryId, repositoryName)
        scans = store.scans.get(imageId["imageDigest"])
        if not scans:
            raise _error("ScanNotFoundException")
        return scans.pop(0) if len(scans) > 1 else scans[0]
