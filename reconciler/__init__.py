"""Keeps Azure Batch pools and Dask clusters on Azure VMs as a YAML file declares them."""

__version__ = "0.1.0"
