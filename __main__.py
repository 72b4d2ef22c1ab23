"""Reads the stack config and builds the fleet."""

import pulumi

pulumi.export("stack", pulumi.get_stack())
