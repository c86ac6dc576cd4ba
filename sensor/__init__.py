"""Sensor: capture, L2-L4 decode, flow table, TCP reassembly and the TLS state machine."""
