"""The AWS side's server routes each request without listing moto's package directory again."""

from __future__ import annotations

import os

import pytest
from moto import backends

from fargatelab.local.aws.server import fixed_module_list


def test_one_listing_routes_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    original = backends.list_of_moto_modules
    monkeypatch.setattr(backends, "list_of_moto_modules", original)  # undone after the test
    expected = list(original())
    fixed_module_list()
    fixed_module_list()  # a second call keeps the first listing

    def no_listing(path: str) -> list[str]:
        raise AssertionError(f"listed {path} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert list(backends.list_of_moto_modules()) == expected
    assert {"eks", "ec2", "elbv2", "iam"} <= set(backends.list_of_moto_modules())
