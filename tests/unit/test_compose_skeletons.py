"""skeletons/: the service skeletons the renderer fills in."""

from __future__ import annotations

import re

import pytest
import yaml

from lab.errors import LabError
from lab.render.compose_file import (
    APP_HEALTHCHECK,
    GITALY_HEALTHCHECK,
    NETWORK,
    compose_dict,
    fill,
    skeleton,
)
from lab.resources import data_dir
from lab.spec.labspec import SpecRequest, resolve


def test_fill_whole_and_inline_placeholders() -> None:
    labels = {"a": "1"}
    out = fill({"labels": "{labels}", "volumes": ["{node}-data:/x"], "n": 5, "k{node}": "v"},
               {"labels": labels, "node": "gitaly1"})
    assert out == {"labels": {"a": "1"}, "volumes": ["gitaly1-data:/x"], "n": 5,
                   "kgitaly1": "v"}
    assert out["labels"] is not labels  # a copy: services never share mutable parts


def test_unknown_placeholder_names_file() -> None:
    with pytest.raises(LabError, match=r"skeletons/app.yml: unknown placeholder \{nod\}"):
        fill({"hostname": "{nod}"}, {"node": "x"}, "skeletons/app.yml")


@pytest.mark.parametrize("role", ["app", "gitaly"])
def test_skeletons_are_plain_compose(role: str) -> None:
    data = yaml.safe_load((data_dir("skeletons") / f"{role}.yml").read_text())
    assert data == skeleton(role)
    assert list(data["networks"]) == [NETWORK]
    assert data["restart"] == "no"  # quoted: YAML 1.1 would read a bare no as false
    assert data["healthcheck"]["test"] == "{healthcheck}"


def test_rendered_services_follow_the_skeletons() -> None:
    lab = resolve(SpecRequest(topology="scaled", sets=("nodes.gitaly1.publish.gitaly=0",)))
    services = compose_dict(lab, "img:1", "/labs/scaled")["services"]
    gitaly, app = services["gitaly1"], services["gitlab"]
    assert gitaly["healthcheck"]["test"] == GITALY_HEALTHCHECK
    assert app["healthcheck"]["test"] == APP_HEALTHCHECK
    assert gitaly["volumes"] == ["./nodes/gitaly1:/etc/gitlab", "gitaly1-data:/var/opt/gitlab",
                                 "gitaly1-logs:/var/log/gitlab"]
    assert gitaly["ports"] == ["127.0.0.1::8075"]
    assert "depends_on" not in app  # every node starts at once
    # Every key of the skeleton is in the service, in the skeleton's order.
    for svc, role in ((gitaly, "gitaly"), (app, "app")):
        assert list(svc)[:len(skeleton(role))] == list(skeleton(role))


def test_dollars_reach_the_container_as_written() -> None:
    """Compose interpolates $VAR and ${VAR} in every string of the file (and reads $$ as $):
    Ruby in omnibus_config, or a lab folder path with a $, must not be rewritten by it."""
    from lab.render.compose_file import render_compose

    ruby = 'gitlab_rails["x"] = "${HOME} $stdout $$"'
    lab = resolve(SpecRequest(topology="scaled", sets=(f"nodes.gitlab.omnibus_config={ruby}",)))
    text = render_compose(lab, "img", "/tmp/a$b")
    data = yaml.safe_load(text)
    env = data["services"]["gitlab"]["environment"]["GITLAB_OMNIBUS_CONFIG"]
    assert re.sub(r"\$\$", "$", env) == ruby
    assert not re.search(r"(?<!\$)\$(?!\$)", re.sub(r"\$\$", "", text))  # no bare $ left
    assert compose_dict(lab, "img", "/tmp/a$b")["services"]["gitlab"]["environment"][
        "GITLAB_OMNIBUS_CONFIG"] == ruby  # what lab compares and starts with stays as written
