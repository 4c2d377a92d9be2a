"""Helpers shared by the test tiers and the benches (private instances, CIB readers, Keystone admin...)."""
