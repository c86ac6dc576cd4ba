"""Test support shared by the tests (and a few benches): a throwaway PKI, summary builders, the retired
incident-state format.  Test code only; nothing in the product imports it."""
