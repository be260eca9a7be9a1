"""Deciding: the engine, the destination guard, and the gate that holds what the policy in
force decides with."""
