"""Job and task operations of the Batch service: what gives pools real work to run and to drain."""

from __future__ import annotations

from typing import Any

from reconciler.emulator.batch import validation as check
from reconciler.emulator.batch.accounts import AccountState
from reconciler.emulator.batch.bodies import job_body, metadata_url, task_body
from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.jobs import Job, Task, job_defaults, task_defaults
from reconciler.emulator.batch.paging import ListQuery, Page, page
from reconciler.emulator.batch.pools import Pool
from reconciler.emulator.batch.timefmt import iso
from reconciler.emulator.clock import SimClock


def not_found(kind: str, what: str) -> BatchServiceError:
    return BatchServiceError(404, f"{kind}NotFound", f"The specified {what} does not exist.")


class JobOperations:
    """Mixed into `BatchService`, which provides the clock, the accounts and the event scheduling."""

    clock: SimClock

    def now(self) -> float:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def account(self, name: str) -> AccountState:
        raise NotImplementedError

    def _settle(self, pool: Pool) -> None:
        raise NotImplementedError

    def create_job(self, account: str, body: dict[str, Any]) -> Job:
        self.sync()
        state = self.account(account)
        job_id = check.require_id(body)
        if job_id.lower() in state.jobs:
            raise BatchServiceError(409, "JobExists", "The specified job already exists.")
        pool_info = body.get("poolInfo")
        if not isinstance(pool_info, dict):
            raise check.missing("poolInfo")
        if not pool_info.get("poolId"):
            raise check.invalid("poolInfo", pool_info, "The emulator runs jobs on an existing pool id only")
        now = self.now()
        job = Job(job_defaults(body), now, state.new_etag(), state_time=now, last_modified=now)
        state.jobs[job_id.lower()] = job
        return job

    def job(self, account: str, job_id: str) -> Job:
        self.sync()
        job = self.account(account).jobs.get(job_id.lower())
        if job is None:
            raise not_found("Job", "job")
        return job

    def job_body(self, account: str, job: Job, base: str, *, element: bool = True) -> dict[str, Any]:
        return job_body(job, base, self.clock.at, element=element)

    def list_job_page(self, account: str, base: str, query: ListQuery) -> Page:
        self.sync()
        rows = [job_body(j, base, self.clock.at, element=False) for j in self.account(account).jobs.values()]
        return page(rows, query)

    def delete_job(self, account: str, job_id: str) -> None:
        job = self.job(account, job_id)
        state = self.account(account)
        now = self.now()
        queue = state.queues.get(job.pool_id.lower(), [])
        queue[:] = [t for t in queue if t.job_id != job.id]
        pool = state.pools.get(job.pool_id.lower())
        for task in job.tasks.values():
            if task.state == "running" and pool is not None and task.node_id in pool.nodes:
                node = pool.nodes[task.node_id]
                if task in node.running:
                    node.running.remove(task)
                    pool.settle_node(node, now)
        del state.jobs[job.id.lower()]
        if pool is not None:
            pool.schedule_tasks(now)
            self._settle(pool)

    def add_task(self, account: str, job_id: str, body: dict[str, Any]) -> Task:
        job = self.job(account, job_id)
        task = self._new_task(account, job, body)
        self._enqueue(account, job, [task])
        return task

    def add_tasks(self, account: str, job_id: str, body: dict[str, Any], base: str) -> dict[str, Any]:
        job = self.job(account, job_id)
        values = body.get("value")
        if not isinstance(values, list):
            raise check.missing("value")
        if len(values) > 100:
            raise BatchServiceError(
                413, "RequestBodyTooLarge", "The request body is too large: at most 100 tasks per collection."
            )
        results: list[dict[str, Any]] = []
        added: list[Task] = []
        for item in values:
            task_id = item.get("id") if isinstance(item, dict) else None
            try:
                task = self._new_task(account, job, item if isinstance(item, dict) else {})
            except BatchServiceError as err:
                results.append(
                    {
                        "status": "clienterror",
                        "taskId": str(task_id or ""),
                        "error": {
                            "code": err.code,
                            "message": {"lang": "en-US", "value": err.message},
                            "values": [{"key": k, "value": v} for k, v in err.values.items()],
                        },
                    }
                )
                continue
            added.append(task)
            results.append(
                {
                    "status": "success",
                    "taskId": task.id,
                    "eTag": task.etag,
                    "lastModified": iso(self.clock.at(task.last_modified)),
                    "location": f"{base}/jobs/{job.id}/tasks/{task.id}",
                }
            )
        self._enqueue(account, job, added)
        return {"odata.metadata": metadata_url(base, "taskaddresult"), "value": results}

    def _new_task(self, account: str, job: Job, body: dict[str, Any]) -> Task:
        task_id = check.require_id(body)
        if not body.get("commandLine"):
            raise check.missing("commandLine")
        if task_id.lower() in job.tasks:
            raise BatchServiceError(409, "TaskExists", "The specified task already exists.")
        now = self.now()
        state = self.account(account)
        task = Task(job.id, task_defaults(body), now, state.new_etag(), state_time=now, last_modified=now)
        job.tasks[task_id.lower()] = task
        return task

    def _enqueue(self, account: str, job: Job, tasks: list[Task]) -> None:
        state = self.account(account)
        key = job.pool_id.lower()
        state.queues.setdefault(key, []).extend(tasks)
        pool = state.pools.get(key)
        if pool is not None:
            pool.schedule_tasks(self.now())
            self._settle(pool)

    def task(self, account: str, job_id: str, task_id: str) -> Task:
        task = self.job(account, job_id).tasks.get(task_id.lower())
        if task is None:
            raise not_found("Task", "task")
        return task

    def task_body(self, task: Task, base: str, *, element: bool = True) -> dict[str, Any]:
        return task_body(task, base, self.clock.at, element=element)

    def list_task_page(self, account: str, job_id: str, base: str, query: ListQuery) -> Page:
        job = self.job(account, job_id)
        rows = [task_body(t, base, self.clock.at, element=False) for t in job.tasks.values()]
        return page(rows, query)

    def task_counts(self, account: str, job_id: str, base: str) -> dict[str, Any]:
        job = self.job(account, job_id)
        counts = dict.fromkeys(("active", "running", "completed", "succeeded", "failed"), 0)
        slots = dict(counts)
        for task in job.tasks.values():
            kinds = ["completed", "succeeded" if task.result == "success" else "failed"]
            for kind in [task.state] if task.state in ("active", "running") else kinds:
                counts[kind] += 1
                slots[kind] += task.slots
            if task.state == "preparing":
                counts["running"] += 1
                slots["running"] += task.slots
        return {
            "odata.metadata": metadata_url(base, "taskcountsresult/@Element"),
            "taskCounts": counts,
            "taskSlotCounts": slots,
        }
