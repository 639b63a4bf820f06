"""The Batch data plane: pools, nodes, jobs and tasks on simulated time, behind the service's REST API."""

from reconciler.emulator.batch.admin import add_batch_admin_routes
from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.routes import add_batch_routes
from reconciler.emulator.batch.service import BatchService

__all__ = ["BatchService", "BatchServiceError", "add_batch_admin_routes", "add_batch_routes"]
