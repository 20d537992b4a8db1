"""Finding constructs by path in the construct tree."""

from __future__ import annotations

import weakref

from constructs import IConstruct

# Each construct's children found so far: a lookup is two round trips to the jsii runtime (the node,
# then the child), and the paths looked up share most of their prefixes. Weak keys: an entry goes
# with its construct.
_FOUND: weakref.WeakKeyDictionary[IConstruct, dict[str, IConstruct]] = weakref.WeakKeyDictionary()


def descendant(scope: IConstruct, path: str) -> IConstruct:
    """The construct at ``path`` (ids joined by "/") under ``scope``."""
    node = scope
    for part in path.split("/"):
        found = _FOUND.setdefault(node, {})
        if part not in found:
            found[part] = node.node.find_child(part)
        node = found[part]
    return node
