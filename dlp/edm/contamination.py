"""Cross-client contamination: a customer record of one client sent toward another client's domain.

A call center serving several clients must not let one client's customer data reach another client.
The clients' domains come from the policy's `edm: clients: <name>: domains`. A CUSTOMER_RECORD finding
of client A in a message to a recipient (or web host) owned by client B gets the label
"contamination: A -> B (<fields>)" and the verdict the `edm-contamination` rule.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from dlp.edm.config import CONTAMINATION_RULE, EdmSettings
from dlp.model import Action, Channel, Message, Verdict
from dlp.policy import Policy

ENTITY = "CUSTOMER_RECORD"


def destination_hosts(message: Message) -> list[str]:
    env = message.envelope
    if message.channel in (Channel.SMTP, Channel.PASSIVE) and env.recipients:
        return [r.lower().strip("<>").rpartition("@")[2] for r in env.recipients]
    if env.destination:
        host = urlsplit(env.destination).hostname if "://" in env.destination else env.destination.rpartition(":")[0]
        return [(host or env.destination).lower()]
    return []


class Contamination:
    def __init__(self, edm: EdmSettings, policy: Policy) -> None:
        self.edm = edm
        self.policy = policy

    def apply(self, message: Message, verdict: Verdict) -> Verdict:
        if not self.edm.clients or not any(f.entity == ENTITY for f in verdict.findings):
            return verdict
        owners = sorted({o for h in destination_hosts(message) if (o := self.edm.owner_of(h))})
        if not owners:
            return verdict
        findings = []
        contaminated = False
        for f in verdict.findings:
            client, sep, fields = f.label.partition(": ")
            others = [o for o in owners if o != client]
            if f.entity != ENTITY or not sep or not others:
                findings.append(f)
                continue
            contaminated = True
            label = f"contamination: {client} -> {','.join(others)} ({fields})"
            findings.append(replace(f, label=label, masked=label))
        if not contaminated:
            return verdict
        from dlp.windows import escalate

        channel = str(message.channel)
        action = self.edm.contamination_action_for(channel)
        shadow = self.policy.monitor or channel in self.policy.monitor_channels
        enforced = Action.ALERT if shadow and action.rank > Action.ALERT.rank else action
        return escalate(verdict, CONTAMINATION_RULE, action, enforced, self.edm.contamination_severity,
                        findings=tuple(findings))
