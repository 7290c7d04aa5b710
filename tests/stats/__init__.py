"""Tests of rbqm.stats, one module per method plus the shared contract and validation tests."""
