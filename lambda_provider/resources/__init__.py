"""Pulumi dynamic resources for Lambda Cloud: `SshKey`, `Filesystem`, `FirewallRuleset`, `Instance`.

Provider classes live in these modules under stable names; state pickles reference them by module path
(`lambda_provider.resources.instance.InstanceProvider`, ...), so do not move or rename them.
"""

from lambda_provider.resources.filesystem import Filesystem, FilesystemProvider
from lambda_provider.resources.firewall_ruleset import FirewallRuleset, FirewallRulesetProvider
from lambda_provider.resources.instance import Instance, InstanceProvider
from lambda_provider.resources.ssh_key import SshKey, SshKeyProvider

__all__ = [
    "Filesystem",
    "FilesystemProvider",
    "FirewallRuleset",
    "FirewallRulesetProvider",
    "Instance",
    "InstanceProvider",
    "SshKey",
    "SshKeyProvider",
]
