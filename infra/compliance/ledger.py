"""Acknowledgements of rule findings, recorded so the compliance report can list them."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


@dataclass(frozen=True)
class Acknowledged:
    construct_path: str
    rule_id: str
    reason: str


@dataclass
class Ledger:
    """Every acknowledgement goes through :meth:`acknowledge`, on the narrowest construct."""

    entries: list[Acknowledged] = field(default_factory=list)
    # A construct's Validations and path, looked up once (each lookup is a round trip to the jsii
    # runtime; a construct often carries several acknowledgements). Holding the construct keeps its
    # id() from being reused while it is a key.
    _seen: dict[int, tuple[IConstruct, Validations, str]] = field(default_factory=dict, repr=False)

    def acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        # Ids match exactly; a '*' in the rule part would read as a blanket acknowledgement. Inside
        # the brackets it is part of the finding itself (IAM5[Resource::<Arn>:*]).
        if "*" in rule_id.split("[", 1)[0] or not reason.strip():
            raise ValueError(f"acknowledgement of {rule_id!r} needs an exact finding id and a reason")
        seen = self._seen.get(id(construct))
        if seen is None:
            seen = self._seen[id(construct)] = (construct, Validations.of(construct), construct.node.path)
        _, validations, path = seen
        validations.acknowledge(Acknowledgment(id=rule_id, reason=reason))
        self.entries.append(Acknowledged(path, rule_id, reason))
