"""Networking: bridges, veths, IPAM, NAT and the embedded DNS resolver."""
