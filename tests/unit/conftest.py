"""Fixtures shared by the controller's unit tests (tests/unit/test_controller*.py)."""

from __future__ import annotations

import pytest
from test_controller import KEY, Clock, FakeApi, InlineSolver, infd, load

from greenshard.k8s import controller as ctl
from greenshard.k8s import observe


@pytest.fixture
def world() -> tuple[ctl.Controller, FakeApi, Clock]:
    nodes = {
        n["metadata"]["name"]: observe.node_facts(n) for n in load("examples/nodes.yaml")["items"]
    }
    caches = observe.Caches(
        nodes=nodes,
        profiles={"default": load("crds/samples/gridprofile.yaml")},
        infds={KEY: infd()},
        shards={},
    )
    api = FakeApi(caches)
    clock = Clock()
    controller = ctl.Controller(api, InlineSolver(), hour=lambda: 12, clock=clock)
    controller.attach(caches)
    return controller, api, clock
