"""conftest's `system_parts`: a missing chromium/PostgreSQL/dev package skips locally, fails when CI requires it."""
from __future__ import annotations

import pytest


def test_a_missing_part_skips_with_its_reason_on_a_local_run(system_parts):
    local = type(system_parts)(required=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium executable"):
        local.missing("no chromium executable")
    with pytest.raises(pytest.skip.Exception, match="playwright is not installed: No module named"):
        local.import_module("no_such_module_i2edit", "playwright is not installed")


def test_a_missing_part_fails_with_the_same_reason_when_required(system_parts):
    required = type(system_parts)(required=True)
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL server .*I2EDIT_REQUIRE_SYSTEM_TESTS is set"):
        required.missing("no PostgreSQL server")
    with pytest.raises(pytest.fail.Exception, match="psycopg2 is not installed: No module named"):
        required.import_module("no_such_module_i2edit", "psycopg2 is not installed")
    assert required.import_module("json", "json is missing").dumps([1]) == "[1]"


def test_the_switch_is_read_from_the_environment(system_parts):
    parts = type(system_parts)
    assert parts.from_environment({"I2EDIT_REQUIRE_SYSTEM_TESTS": "1"}).required
    assert not parts.from_environment({"I2EDIT_REQUIRE_SYSTEM_TESTS": "0"}).required
    assert not parts.from_environment({}).required
