"""The start task every node runs as it joins a pool, and what it runs with."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Between, NotBlank, one_each
from reconciler.spec.pool_types import (
    ApiModel,
    ApiSecret,
    AutoUserScope,
    ContainerHostDataPath,
    ContainerWorkingDirectory,
    ElevationLevel,
    require_one_of,
    require_unique,
)
from reconciler.spec.pool_vm import ContainerRegistry, IdentityReference

_FILE_MODE = re.compile(r"[0-7]{3,4}")


class BindMount(ApiModel):
    source: ContainerHostDataPath | None = None
    is_read_only: bool | None = None


class TaskContainerSettings(ApiModel):
    container_run_options: str | None = None
    image_name: Annotated[str, NotBlank()]
    registry: ContainerRegistry | None = None
    working_directory: ContainerWorkingDirectory | None = None
    container_host_batch_bind_mounts: list[BindMount] | None = None


class ResourceFile(ApiModel):
    """One file or blob container to download; URLs are secrets because they usually carry a SAS."""

    auto_storage_container_name: str | None = None
    storage_container_url: ApiSecret | None = None
    http_url: ApiSecret | None = None
    blob_prefix: str | None = None
    file_path: str | None = None
    file_mode: str | None = None
    identity_reference: IdentityReference | None = None

    @field_validator("file_mode")
    @classmethod
    def _octal(cls, mode: str | None) -> str | None:
        if mode is not None and not _FILE_MODE.fullmatch(mode):
            raise PydanticCustomError(
                "file_mode", "must be an octal file mode like 0644 (got {got})", {"got": repr(mode)}
            )
        return mode

    @field_validator("file_path")
    @classmethod
    def _inside_working_directory(cls, path: str | None) -> str | None:
        if path is not None and ".." in path.replace("\\", "/").split("/"):
            raise PydanticCustomError(
                "file_path", "must stay inside the task working directory (got {got})", {"got": repr(path)}
            )
        return path

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        require_one_of(
            "resource_file_source", self, ("auto_storage_container_name", "storage_container_url", "http_url")
        )
        if self.http_url is not None and self.file_path is None:
            raise PydanticCustomError("resource_file_path", "file_path is required with http_url", {})
        return self


class EnvironmentSetting(ApiModel):
    name: Annotated[str, NotBlank()]
    value: str | None = None


class AutoUserSpecification(ApiModel):
    scope: AutoUserScope | None = None
    elevation_level: ElevationLevel | None = None


USER_IDENTITY_ALTERNATIVES = one_each("username", "auto_user")


class UserIdentity(ApiModel):
    username: str | None = None
    auto_user: AutoUserSpecification | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> Self:
        require_one_of("user_identity", self, ("username", "auto_user"))
        return self


class StartTask(ApiModel):
    command_line: Annotated[str, NotBlank()]
    container_settings: TaskContainerSettings | None = None
    resource_files: list[ResourceFile] | None = None
    environment_settings: list[EnvironmentSetting] | None = None
    user_identity: UserIdentity | None = None
    max_task_retry_count: Annotated[int, Between(-1)] | None = None
    wait_for_success: bool | None = None

    @field_validator("environment_settings")
    @classmethod
    def _distinct_names(cls, settings: list[EnvironmentSetting] | None) -> list[EnvironmentSetting] | None:
        require_unique("environment setting names", (s.name for s in settings or []))
        return settings
