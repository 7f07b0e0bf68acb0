"""Synthetic data: NeMo Data Designer-style jobs generated through the gateway, with a license gate."""
