"""Desired state: validated models of the config file and the loader that builds them. Pure: no I/O to Azure."""
