"""The loader: every problem is one line at the place the user wrote the value."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError, LocatedProblem
from reconciler.spec.loader import load_model

WriteFile = Callable[[str, str], Path]
Problems = Callable[..., list[str]]
DATA = Path(__file__).parent / "data"

ACCOUNT = """\
accounts:
  prod:
    batch_url: https://prodbatch.japaneast.batch.azure.com
    auth:
      method: shared_key
      key: ${env:BATCH_KEY}
"""

IMAGE = """\
    virtual_machine_configuration:
      image_reference:
        publisher: microsoft-dsvm
        offer: ubuntu-hpc
        sku: "2204"
        version: latest
      node_agent_sku_id: batch.node.ubuntu 22.04
"""


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based line and column of the `nth` occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


Load = Callable[..., Config]

UNSIZED = ACCOUNT + "pools:\n  p_id1:\n    account: prod\n    vm_size: standard_d4s_v3\n" + IMAGE
"""A config whose one pool lacks only its size; more keys can be appended at its indentation."""
POOL = UNSIZED + "    target_dedicated_nodes: 1\n"


def at(path: Path, text: str, needle: str, rest: str, nth: int = 1) -> str:
    line, col = where(text, needle, nth)
    return f"{path}:{line}:{col}: {rest}"


def test_valid_config_loads(write: WriteFile, load: Load) -> None:
    config = load(write("ok.yaml", UNSIZED + "    target_dedicated_nodes: 2\n"))
    assert list(config.pools) == ["p_id1"]
    assert config.pools["p_id1"].target_dedicated_nodes == 2


def test_error_in_nested_pool_value_points_at_the_value(write: WriteFile, problems: Problems) -> None:
    text = POOL + "    resize_timeout: PT2M\n"
    path = write("x.yaml", text)
    assert problems(path) == [
        at(path, text, "PT2M", "pools.p_id1.resize_timeout: must be at least 5 minutes (got PT2M)")
    ]


def test_error_deep_inside_a_list(write: WriteFile, problems: Problems) -> None:
    text = POOL + "    start_task:\n      command_line: x\n      max_task_retry_count: lots\n"
    path = write("x.yaml", text)
    [line] = problems(path)
    assert line.startswith(at(path, text, "lots", "pools.p_id1.start_task.max_task_retry_count: "))


def test_unknown_key_points_at_the_key_and_suggests(write: WriteFile, problems: Problems) -> None:
    text = POOL + "    vm_sise: x\n"
    path = write("x.yaml", text)
    assert problems(path) == [
        at(path, text, "vm_sise", "pools.p_id1.vm_sise: unknown key 'vm_sise' (did you mean 'vm_size'?)")
    ]


def test_unknown_top_level_key(write: WriteFile, problems: Problems) -> None:
    text = POOL + "safty:\n  prune: true\n"
    path = write("x.yaml", text)
    assert problems(path) == [at(path, text, "safty", "safty: unknown key 'safty' (did you mean 'safety'?)")]


def test_missing_key_points_at_its_parent(write: WriteFile, problems: Problems) -> None:
    text = ACCOUNT + "pools:\n  p_id1:\n    account: prod\n    target_dedicated_nodes: 1\n" + IMAGE
    path = write("x.yaml", text)
    assert problems(path) == [at(path, text, "p_id1", "pools.p_id1: missing required key 'vm_size'")]


def test_every_problem_is_reported_sorted_by_line(write: WriteFile, problems: Problems) -> None:
    text = UNSIZED + "    resize_timeout: PT2M\n    target_dedicated_nodes: -1\nmetrics:\n  port: 99999\n"
    path = write("x.yaml", text)
    found = problems(path)
    assert [int(p.split(":")[1]) for p in found] == sorted(where(text, n)[0] for n in ("PT2M", "-1", "99999"))


def test_error_in_defaults_is_reported_at_the_defaults_line(write: WriteFile, problems: Problems) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    resize_timeout: 2m\n    target_dedicated_nodes: 1\n"
        + "pools:\n"
        + "".join(f"  {p}:\n    account: prod\n    vm_size: standard_d4s_v3\n{IMAGE}" for p in ("a", "b"))
    )
    path = write("x.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "2m",
            "defaults.pool.resize_timeout: must be at least 5 minutes (got 2m)"
            " (inherited by pools.a, pools.b)",
        )
    ]


def test_defaults_merge_under_pools_and_the_pool_wins(write: WriteFile, load: Load) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    target_dedicated_nodes: 3\n    vm_size: standard_d2s_v3\n"
        + "    start_task:\n      command_line: echo default\n      max_task_retry_count: 2\n"
        + "pools:\n  a:\n    account: prod\n    vm_size: standard_d8s_v3\n"
        + "    start_task:\n      command_line: echo own\n"
        + IMAGE
    )
    pool = load(write("x.yaml", text)).pools["a"]
    assert pool.vm_size == "standard_d8s_v3"
    assert pool.target_dedicated_nodes == 3
    assert pool.start_task is not None
    assert pool.start_task.command_line == "echo own"
    assert pool.start_task.max_task_retry_count == 2


def test_a_pool_of_defaults_only(write: WriteFile, load: Load) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    account: prod\n    vm_size: standard_d2s_v3\n"
        + "    target_dedicated_nodes: 1\n"
    )
    text += IMAGE + "pools:\n  empty:\n"
    assert load(write("x.yaml", text)).pools["empty"].vm_size == "standard_d2s_v3"


def test_directory_merges_files_in_order_and_names_the_second_file(
    write: WriteFile, problems: Problems, tmp_path: Path
) -> None:
    write("conf/10-accounts.yaml", ACCOUNT)
    second = (
        "pools:\n  p1:\n    account: prod\n    vm_size: standard_d4s_v3\n"
        + IMAGE
        + "    target_dedicated_nodes: 1\n    task_slots_per_node: 0\n"
    )
    path = write("conf/20-pools.yml", second)
    write("conf/notes.txt", "not: [a config")
    [line] = problems(tmp_path / "conf")
    assert line.startswith(at(path, second, "0\n", "pools.p1.task_slots_per_node: "))


def test_directory_and_files_merge_into_one_config(write: WriteFile, load: Load, tmp_path: Path) -> None:
    write("conf/a.yaml", ACCOUNT)
    write(
        "conf/b.yaml.j2",
        "pools:\n  p1:\n    account: prod\n    vm_size: d4\n    target_dedicated_nodes: 1\n" + IMAGE,
    )
    extra = write("extra.yaml", "safety:\n  prune: true\n")
    config = load(tmp_path / "conf", extra)
    assert list(config.pools) == ["p1"]
    assert config.safety.prune is True


def test_same_value_set_differently_in_two_files(write: WriteFile, problems: Problems) -> None:
    first = write("a.yaml", UNSIZED + "    target_dedicated_nodes: 1\n")
    second_text = "pools:\n  p_id1:\n    target_dedicated_nodes: 2\n"
    second = write("b.yaml", second_text)
    line, col = where(UNSIZED + "    target_dedicated_nodes: 1\n", "target_dedicated_nodes")
    assert problems(first, second) == [
        at(
            second,
            second_text,
            "target_dedicated_nodes",
            f"pools.p_id1.target_dedicated_nodes: defined twice (first at {first}:{line}:{col})",
        )
    ]


def test_same_value_set_identically_in_two_files_is_fine(write: WriteFile, load: Load) -> None:
    first = write("a.yaml", UNSIZED + "    target_dedicated_nodes: 1\n")
    second = write("b.yaml", "pools:\n  p_id1:\n    target_dedicated_nodes: 1\n")
    assert load(first, second).pools["p_id1"].target_dedicated_nodes == 1


def test_an_empty_section_in_one_file_does_not_conflict(write: WriteFile, load: Load) -> None:
    first = write("a.yaml", "pools:\nclusters: {}\naccounts:\n")
    second = write("b.yaml", POOL)
    assert list(load(first, second).pools) == ["p_id1"]


def test_jinja_template_errors_map_to_template_lines(write: WriteFile, problems: Problems) -> None:
    text = (
        ACCOUNT
        + "pools:\n"
        + "{% for name in ['a', 'b'] %}\n"
        + "  {{ name }}:\n"
        + "    account: prod\n"
        + "    vm_size: standard_d4s_v3\n"
        + "    target_dedicated_nodes: 1\n"
        + "    resize_timeout: {{ '2m' if name == 'b' else '15m' }}\n"
        + IMAGE
        + "{% endfor %}\n"
        + "metrics:\n"
        + "  port: 0\n"
    )
    path = write("x.yaml.j2", text)
    found = problems(path)
    timeout_line = where(text, "resize_timeout")[0]
    port_line = where(text, "port: 0")[0]
    assert [p.split(": ", 1)[0].rsplit(":", 1)[0] for p in found] == [
        f"{path}:{timeout_line}",
        f"{path}:{port_line}",
    ]
    assert "pools.b.resize_timeout: must be at least 5 minutes (got 2m)" in found[0]


def test_jinja_sees_environment_variables(write: WriteFile, load: Load) -> None:
    text = UNSIZED + "    target_dedicated_nodes: {{ env.NODES }}\n"
    assert load(write("x.yaml.j2", text), NODES="4").pools["p_id1"].target_dedicated_nodes == 4


def test_jinja_undefined_variable_is_a_problem_at_its_line(write: WriteFile, problems: Problems) -> None:
    text = UNSIZED + "    target_dedicated_nodes: {{ env.NOT_THERE }}\n"
    path = write("x.yaml.j2", text)
    [line] = problems(path)
    assert line.startswith(f"{path}:{where(text, 'NOT_THERE')[0]}:1: template: ")
    assert "NOT_THERE" in line


def test_jinja_syntax_error_is_a_problem_at_its_line(write: WriteFile, problems: Problems) -> None:
    text = "accounts: {}\n{% if %}\n"
    path = write("x.yml.j2", text)
    [line] = problems(path)
    assert line.startswith(f"{path}:2:1: template: ")


def test_duplicate_key_names_both_places(write: WriteFile, problems: Problems) -> None:
    text = POOL + "    vm_size: standard_d8s_v3\n"
    path = write("x.yaml", text)
    first_line, first_col = where(text, "vm_size")
    assert problems(path) == [
        at(
            path,
            text,
            "vm_size",
            f"pools.p_id1.vm_size: duplicate key 'vm_size' (first at {path}:{first_line}:{first_col})",
            nth=2,
        )
    ]


@pytest.mark.parametrize(
    ("text", "line", "col", "expected"),
    [
        ("pools:\n  p: [1, 2\n", 3, 1, "YAML syntax: "),
        ("pools:\n\tp: 1\n", 2, 1, "YAML syntax: found character '\\t' that cannot start any token"),
        ("- a\n- b\n", 1, 1, "the top level must be a mapping (key: value)"),
        ("a: 1\n---\nb: 2\n", 3, 1, "a config file holds one YAML document, not several"),
        ("a: !!python/object:os.system x\n", 1, 4, "unsupported YAML tag"),
        ("a: \x07\n", 1, 4, "YAML syntax: "),
    ],
)
def test_yaml_problems_have_positions(
    write: WriteFile, problems: Problems, text: str, line: int, col: int, expected: str
) -> None:
    path = write("x.yaml", text)
    [found] = problems(path)
    assert found.startswith(f"{path}:{line}:{col}: {expected}")


def test_bad_paths_are_problems_not_exceptions(tmp_path: Path, problems: Problems, write: WriteFile) -> None:
    (tmp_path / "empty").mkdir()
    binary = tmp_path / "junk.yaml"
    binary.write_bytes(b"a: 1\nb: \xff\xfe\x00")
    found = problems(tmp_path / "missing.yaml", tmp_path / "empty", binary)
    assert found == [
        f"{tmp_path / 'empty'}:1:1: no *.yaml, *.yml or *.yaml.j2 files in this directory",
        f"{binary}:2:4: not UTF-8 text",
        f"{tmp_path / 'missing.yaml'}:1:1: no such file or directory",
    ]


def test_alias_bomb_is_stopped(write: WriteFile, problems: Problems) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    [found] = problems(write("bomb.yaml", "\n".join(lines) + "\n"))
    assert "too many alias expansions" in found


def test_deep_nesting_is_a_problem(write: WriteFile, problems: Problems) -> None:
    path = write("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problems(path) == [f"{path}:1:68: nested deeper than 64 levels"]


def test_brackets_in_quotes_and_comments_are_not_nesting(write: WriteFile, load: Load) -> None:
    text = POOL.replace("vm_size: standard_d4s_v3", "vm_size: '" + "[" * 100 + "' # " + "{" * 100)
    assert load(write("x.yaml", text)).pools["p_id1"].vm_size == "[" * 100


def test_huge_integer_is_a_problem(write: WriteFile, problems: Problems) -> None:
    text = UNSIZED + "    target_dedicated_nodes: " + "9" * 5000 + "\n"
    path = write("x.yaml", text)
    assert problems(path) == [at(path, text, "9999", "number is too long")]


def test_merge_keys_take_positions_from_the_anchor(write: WriteFile, problems: Problems) -> None:
    text = (
        ACCOUNT
        + "x-common: &common\n  account: prod\n  resize_timeout: 1m\n  target_dedicated_nodes: 1\n"
        + "pools:\n  p1:\n    <<: *common\n    vm_size: standard_d4s_v3\n"
        + IMAGE
    )
    path = write("x.yaml", text)
    found = problems(path)
    assert at(path, text, "1m", "pools.p1.resize_timeout: must be at least 5 minutes (got 1m)") in found


def test_dask_config_fills_clusters_and_is_named_in_problems(
    write: WriteFile, problems: Problems, tmp_path: Path
) -> None:
    text = "clusters:\n  c1:\n    location: japaneast\n    resource_group: rg\n"
    path = write("x.yaml", text)
    found = problems(path, DASK_CLOUDPROVIDER__AZURE__AZUREVM__DISK_SIZE="5000")
    line, col = where(text, "c1")
    disk = [p for p in found if ".disk_size" in p]
    assert len(disk) == 1
    assert disk[0].startswith(f"{path}:{line}:{col}: clusters.c1.disk_size: ")
    assert disk[0].endswith("(from dask config)")


def test_cross_section_problem_points_at_the_key(write: WriteFile, problems: Problems) -> None:
    text = POOL.replace("account: prod", "account: prd")
    path = write("x.yaml", text)
    [found] = problems(path)
    assert found.startswith(at(path, text, "prd", "pools.p_id1.account: unknown account 'prd'"))


def test_config_error_is_sorted_and_printable() -> None:
    late = LocatedProblem("b.yaml", 1, 1, "x", "late")
    early = LocatedProblem("a.yaml", 9, 2, "", "early")
    error = ConfigError([late, early, late])
    assert error.problems == [early, late]
    assert str(error) == "a.yaml:9:2: early\nb.yaml:1:1: x: late"
    assert repr(error) == "ConfigError(2 problem(s))"


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class _Standin(BaseModel):
    """A small model with a smart union, to see union noise collapse to one line."""

    model_config = ConfigDict(extra="forbid")
    value: int | list[int] | None = None
    thing: _Inner | str | None = None


def _standin_problems(write: WriteFile, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_model([write("s.yaml", text)], _Standin, env={})
    return [str(p) for p in caught.value.problems]


def test_union_errors_collapse_into_one_line(write: WriteFile) -> None:
    found = _standin_problems(write, "value: {a: 1}\n")
    assert len(found) == 1
    assert found[0].endswith("value: should be a valid integer or a valid list")


def test_union_errors_follow_the_member_that_matched_best(write: WriteFile) -> None:
    text = "thing:\n  size: big\n"
    found = _standin_problems(write, text)
    assert found == [
        f"{write('s.yaml', text)}:2:9: thing.size: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_union_errors_of_a_mapping_name_the_missing_key(write: WriteFile) -> None:
    text = "thing:\n  other: 1\n"
    path = write("s.yaml", text)
    assert _standin_problems(write, text) == [
        f"{path}:1:1: thing: missing required key 'size'",
        f"{path}:2:3: thing.other: unknown key 'other'",
    ]


def test_load_model_accepts_a_standin(write: WriteFile) -> None:
    loaded: Any = load_model([write("s.yaml", "value: [1, 2]\nthing: {size: 3}\n")], _Standin, env={})
    assert loaded.value == [1, 2]
    assert loaded.thing == _Inner(size=3)


def test_fixture_files_show_the_documented_line(problems: Problems) -> None:
    path = DATA / "bad_resize_timeout.yaml"
    text = path.read_text()
    assert problems(path) == [
        at(path, text, "PT2M", "pools.p_id1.resize_timeout: must be at least 5 minutes (got PT2M)")
    ]
    assert textwrap.dedent(text) == text


def test_an_empty_file_adds_nothing(write: WriteFile, load: Load) -> None:
    config = load(write("a.yaml", POOL), write("empty.yaml", "# nothing here yet\n"))
    assert list(config.pools) == ["p_id1"]


def test_a_models_own_missing_message_is_kept_and_names_the_key(write: WriteFile, problems: Problems) -> None:
    text = (
        "azure: {subscription_id: 11111111-2222-3333-4444-555555555555}\n"
        "clusters:\n  c1:\n    resource_group: rg\n    vnet: vnet-dask\n    security_group: nsg-dask\n"
        "    location: null\n"
    )
    path = write("x.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "location",
            "clusters.c1.location: required (set it here or in dask config cloudprovider.azure.location)",
        )
    ]
    text = text.replace("    location: null\n", "")
    path = write("y.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "c1",
            "clusters.c1.location: required (set it here or in dask config cloudprovider.azure.location)",
        )
    ]


def test_a_cross_field_missing_message_is_kept(write: WriteFile, problems: Problems) -> None:
    text = "accounts:\n  local:\n    batch_url: https://10.0.0.4\n    auth: {method: shared_key, key: k}\n"
    path = write("x.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "local",
            "accounts.local.account_name: required with shared_key auth: "
            "this batch_url does not name the account",
        )
    ]


GALLERY_IMAGE = (
    "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
    "/providers/Microsoft.Compute/galleries/g/images/ubuntu"
)


def test_a_pool_setting_autoscale_inherits_no_fixed_size(write: WriteFile, load: Load) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    target_dedicated_nodes: 2\n    target_low_priority_nodes: 1\n"
        + "    task_slots_per_node: 4\n"
        + "pools:\n  auto:\n    account: prod\n    vm_size: standard_d4s_v3\n"
        + "    enable_auto_scale: true\n    auto_scale_formula: $TargetDedicatedNodes = 1;\n"
        + IMAGE
    )
    pool = load(write("x.yaml", text)).pools["auto"]
    assert (pool.enable_auto_scale, pool.target_dedicated_nodes, pool.target_low_priority_nodes) == (
        True,
        None,
        None,
    )
    assert pool.task_slots_per_node == 4


def test_a_pool_setting_a_fixed_size_inherits_no_autoscale(write: WriteFile, load: Load) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    enable_auto_scale: true\n"
        + "    auto_scale_formula: $TargetDedicatedNodes = 1;\n    auto_scale_evaluation_interval: 15m\n"
        + "pools:\n  fixed:\n    account: prod\n    vm_size: standard_d4s_v3\n"
        + "    target_low_priority_nodes: 3\n"
        + IMAGE
        + "  inherits:\n    account: prod\n    vm_size: standard_d4s_v3\n"
        + IMAGE
    )
    config = load(write("x.yaml", text))
    fixed = config.pools["fixed"]
    assert (fixed.enable_auto_scale, fixed.auto_scale_formula, fixed.auto_scale_evaluation_interval) == (
        False,
        None,
        None,
    )
    assert (fixed.target_dedicated_nodes, fixed.target_low_priority_nodes) == (None, 3)
    assert config.pools["inherits"].auto_scale_formula == "$TargetDedicatedNodes = 1;"


def test_an_image_id_in_a_pool_inherits_no_marketplace_image(write: WriteFile, load: Load) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    account: prod\n    vm_size: standard_d4s_v3\n"
        + "    target_dedicated_nodes: 1\n"
        + IMAGE
        + "    start_task:\n      command_line: x\n      user_identity: {auto_user: {scope: pool}}\n"
        + "pools:\n"
        + "  gallery:\n    virtual_machine_configuration:\n      image_reference:\n"
        + f"        virtual_machine_image_id: {GALLERY_IMAGE}\n"
        + "    start_task:\n      user_identity: {username: batch}\n"
        + "  pinned:\n    virtual_machine_configuration:\n      image_reference: {version: 22.04.1}\n"
    )
    config = load(write("x.yaml", text))
    gallery = config.pools["gallery"].virtual_machine_configuration
    assert gallery.image_reference.virtual_machine_image_id == GALLERY_IMAGE
    assert gallery.image_reference.publisher is None
    assert gallery.node_agent_sku_id == "batch.node.ubuntu 22.04"
    start_task = config.pools["gallery"].start_task
    assert start_task is not None
    assert start_task.user_identity is not None
    assert (start_task.command_line, start_task.user_identity.username) == ("x", "batch")
    assert start_task.user_identity.auto_user is None
    pinned = config.pools["pinned"].virtual_machine_configuration.image_reference
    assert (pinned.publisher, pinned.offer, pinned.sku, pinned.version) == (
        "microsoft-dsvm",
        "ubuntu-hpc",
        "2204",
        "22.04.1",
    )


def test_an_image_id_in_a_cluster_inherits_no_image_from_dask_config(write: WriteFile, load: Load) -> None:
    text = (
        "azure: {subscription_id: 11111111-2222-3333-4444-555555555555}\n"
        "clusters:\n  c1:\n    location: japaneast\n    resource_group: rg\n    vnet: vnet-dask\n"
        f"    security_group: nsg-dask\n    vm_image: {{id: {GALLERY_IMAGE}}}\n"
    )
    config = load(write("x.yaml", text), DASK_CLOUDPROVIDER__AZURE__AZUREVM__VM_IMAGE="{'sku': '20.04-LTS'}")
    image = config.clusters["c1"].vm_image
    assert (image.id, image.sku, image.publisher) == (GALLERY_IMAGE, None, None)


def test_an_unknown_account_is_reported_with_the_models_errors(write: WriteFile, problems: Problems) -> None:
    text = POOL.replace("account: prod", "account: prd") + "    resize_timeout: PT2M\n"
    path = write("x.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "prd",
            "pools.p_id1.account: unknown account 'prd' (declared: prod); did you mean 'prod'?",
        ),
        at(path, text, "PT2M", "pools.p_id1.resize_timeout: must be at least 5 minutes (got PT2M)"),
    ]


def test_an_unknown_inherited_account_is_reported_once_with_the_models_errors(
    write: WriteFile, problems: Problems
) -> None:
    text = (
        ACCOUNT
        + "defaults:\n  pool:\n    account: prd\n    vm_size: standard_d4s_v3\n"
        + "    target_dedicated_nodes: 1\n"
        + IMAGE
        + "pools:\n  a: {}\n  b: {resize_timeout: 1m}\n"
    )
    path = write("x.yaml", text)
    assert problems(path) == [
        at(
            path,
            text,
            "prd",
            "defaults.pool.account: unknown account 'prd' (declared: prod); did you mean 'prod'?"
            " (inherited by pools.a, pools.b)",
        ),
        at(path, text, "1m", "pools.b.resize_timeout: must be at least 5 minutes (got 1m)"),
    ]


def test_no_account_check_where_the_model_already_rejects_the_names(
    write: WriteFile, problems: Problems
) -> None:
    text = POOL.replace("account: prod", 'account: " "')
    path = write("x.yaml", text)
    assert problems(path) == [at(path, text, '" "', "pools.p_id1.account: must not be empty")]
    text = POOL.replace("accounts:\n  prod:", "accounts:\n- prod:").replace("account: prod", "account: prd")
    path = write("y.yaml", text)
    assert [p.split(": ", 2)[1] for p in problems(path)] == ["accounts"]
