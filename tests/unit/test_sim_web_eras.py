"""The sim app's answers that follow the release (lab/omnibus/eras.py ERAS), no Docker:
where a new project's repository goes, the REST API's project entity and error bodies,
and git over HTTP's refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_sim_repository_api import ADMIN, Sim

from lab.omnibus.release import Version

V = Version.parse
NOT_SMART = "The command you're trying to execute is not allowed."


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    running = Sim(tmp_path)
    try:
        yield running
    finally:
        running.close()


def _create(sim: Sim, **data: str) -> requests.Response:
    return requests.post(f"{sim.url}/api/v4/projects", json=data,
                         headers={"PRIVATE-TOKEN": ADMIN}, timeout=10)


@pytest.mark.parametrize(("release", "relative"), [
    ("11.11.8", "root/demo.git"),  # legacy storage: the project's full path
    ("12.0.0", "@hashed/6b/86/" + hashlib.sha256(b"1").hexdigest() + ".git"),
    ("19.3.0", "@hashed/6b/86/" + hashlib.sha256(b"1").hexdigest() + ".git"),
])
def test_a_new_project_goes_where_its_release_puts_it(sim: Sim, tmp_path: Path, release: str,
                                                      relative: str) -> None:
    sim.handler.release = V(release)
    made = _create(sim, name="demo")
    assert made.status_code == 201, made.text
    assert (tmp_path / "s0" / relative / "HEAD").is_file()
    assert sorted(p.name for p in (tmp_path / "s0").iterdir()) == [relative.split("/")[0]]
    # Git over HTTP reaches the repository at that path.
    refs = requests.get(f"{sim.url}/root/demo.git/info/refs",
                        params={"service": "git-upload-pack"}, auth=("root", ADMIN), timeout=10)
    assert refs.status_code == 200, refs.text


def test_the_project_entity_has_no_disk_path(sim: Sim) -> None:
    made = _create(sim, name="demo").json()
    assert "disk_path" not in made
    assert "disk_path" not in sim.get(f"projects/{made['id']}").json()
    assert all("disk_path" not in p for p in sim.get("projects").json())


def test_projects_without_a_token_list_the_public_ones(sim: Sim) -> None:
    project = _create(sim, name="demo").json()  # private, as the sim makes every project
    anonymous = requests.get(f"{sim.url}/api/v4/projects", timeout=10)
    assert (anonymous.status_code, anonymous.json()) == (200, [])
    one = requests.get(f"{sim.url}/api/v4/projects/{project['id']}", timeout=10)
    assert (one.status_code, one.json()) == (404, {"message": "404 Project Not Found"})
    wrong = requests.get(f"{sim.url}/api/v4/projects", headers={"PRIVATE-TOKEN": "nope"},
                         timeout=10)
    assert (wrong.status_code, wrong.json()) == (401, {"message": "401 Unauthorized"})
    post = requests.post(f"{sim.url}/api/v4/projects", json={"name": "x"}, timeout=10)
    assert post.status_code == 401


@pytest.mark.parametrize("release", ["11.11.8", "19.3.0"])
def test_a_project_with_neither_name_nor_path_gets_grapes_error(sim: Sim, release: str) -> None:
    sim.handler.release = V(release)
    answer = _create(sim)
    assert answer.status_code == 400
    assert answer.text == \
        '{"error":"name, path are missing, at least one parameter must be provided"}'


def test_a_public_project_is_listed_and_fetched_without_a_token(sim: Sim) -> None:
    _create(sim, name="hidden")
    public = _create(sim, name="open", visibility="public").json()
    assert public["visibility"] == "public"
    anonymous = requests.get(f"{sim.url}/api/v4/projects", timeout=10).json()
    assert [p["path_with_namespace"] for p in anonymous] == ["root/open"]
    assert requests.get(f"{sim.url}/api/v4/projects/{public['id']}",
                        timeout=10).json()["id"] == public["id"]
    # Rails' http_download_allowed?: fetching needs no credentials, pushing still does.
    url = f"{sim.url}/root/open.git/info/refs"
    fetch = requests.get(url, params={"service": "git-upload-pack"}, timeout=10)
    assert fetch.status_code == 200, fetch.text
    push = requests.get(url, params={"service": "git-receive-pack"}, timeout=10)
    assert push.status_code == 401
    private = requests.get(f"{sim.url}/root/hidden.git/info/refs",
                           params={"service": "git-upload-pack"}, timeout=10)
    assert private.status_code == 401


def test_grape_reports_every_invalid_parameter(sim: Sim) -> None:
    bad = _create(sim, name="x", visibility="secret")
    assert (bad.status_code, bad.json()) == (400, {"error": "visibility does not have a "
                                                            "valid value"})
    both = _create(sim, visibility="secret")
    assert both.json() == {"error": "name, path are missing, at least one parameter must be "
                                    "provided, visibility does not have a valid value"}
    assert sim.get("projects").json() == []


def test_git_over_http_refuses_in_rails_order(sim: Sim) -> None:
    _create(sim, name="demo")
    url = f"{sim.url}/root/demo.git/info/refs"
    # No credentials: the 401 comes first, whatever the service.
    for params in ({}, {"service": "git-upload-pack"}):
        denied = requests.get(url, params=params, timeout=10)
        assert (denied.status_code, denied.text) == (401, "HTTP Basic: Access denied\n")
        assert denied.headers["WWW-Authenticate"] == 'Basic realm="GitLab"'
    # Signed in, a dumb-HTTP request: Rails' access check refuses the command.
    dumb = requests.get(url, auth=("root", ADMIN), timeout=10)
    assert (dumb.status_code, dumb.text) == (403, NOT_SMART)
    odd = requests.get(url, params={"service": "git-clone"}, auth=("root", ADMIN), timeout=10)
    assert (odd.status_code, odd.text) == (403, NOT_SMART)
    # A command Rails knows but Workhorse does not serve over HTTP: Workhorse's 404.
    archive = requests.get(url, params={"service": "git-upload-archive"},
                           auth=("root", ADMIN), timeout=10)
    assert (archive.status_code, archive.text) == (404, "Not Found\n")
    # ... and it does so before it looks for the project.
    missing = requests.get(f"{sim.url}/root/nothing.git/info/refs", auth=("root", ADMIN),
                           timeout=10)
    assert (missing.status_code, missing.text) == (403, NOT_SMART)


def _settings(sim: Sim, method: str, **data: object) -> requests.Response:
    return requests.request(method, f"{sim.url}/api/v4/application/settings", json=data or None,
                            headers={"PRIVATE-TOKEN": ADMIN}, timeout=10)


@pytest.mark.parametrize(("release", "honoured"), [("11.11.8", False), ("12.8.10", False),
                                                   ("12.9.0", True), ("19.3.0", True)])
def test_ce_ignores_repository_storage_before_12_9(sim: Sim, release: str,
                                                   honoured: bool) -> None:
    sim.handler.release = V(release)
    made = _create(sim, name="p1", repository_storage="storage1")
    assert made.status_code == 201
    assert made.json()["repository_storage"] == ("storage1" if honoured else "default")
    moved = requests.put(f"{sim.url}/api/v4/projects/{made.json()['id']}",
                         json={"repository_storage": "storage1"},
                         headers={"PRIVATE-TOKEN": ADMIN}, timeout=10)
    # An update with nothing Grape declares is refused, as with no parameter at all.
    assert moved.status_code == (200 if honoured else 400)


def test_the_setting_repository_storages_places_new_projects(sim: Sim) -> None:
    sim.handler.release = V("11.11.8")
    assert _settings(sim, "GET").json() == {"id": 1, "repository_storages": ["default"]}
    assert _settings(sim, "PUT", repository_storages=["storage1"]).json()[
        "repository_storages"] == ["storage1"]
    assert _create(sim, name="p1").json()["repository_storage"] == "storage1"
    refused = _settings(sim, "PUT", repository_storages=["storage1", "nfs9"])
    assert (refused.status_code, refused.json()) == (
        400, {"message": {"repository_storages": ["can't include: nfs9"]}})
    assert _settings(sim, "PUT", repository_storages=[]).status_code == 400
    assert _settings(sim, "GET").json()["repository_storages"] == ["storage1"]
    anonymous = requests.get(f"{sim.url}/api/v4/application/settings", timeout=10)
    assert anonymous.status_code == 401


@pytest.mark.parametrize("release", ["12.10.14", "13.12.15", "19.3.0"])
def test_a_new_project_has_no_default_branch_until_its_first_branch(sim: Sim,
                                                                    release: str) -> None:
    """Gitaly's FindDefaultBranchName names no branch in an empty repository and Rails reads
    that as nil on every release (lab/omnibus/eras.py PROJECT_DEFAULT_BRANCH); the first
    branch is then the root ref, whatever its name."""
    sim.handler.release = V(release)
    made = _create(sim, name="demo").json()
    assert made["default_branch"] is None
    assert sim.get(f"projects/{made['id']}").json()["default_branch"] is None
    put = requests.post(f"{sim.url}/api/v4/projects/{made['id']}/repository/files/a.txt",
                        json={"branch": "trunk", "content": "x", "commit_message": "a"},
                        headers={"PRIVATE-TOKEN": ADMIN}, timeout=10)
    assert put.status_code == 201, put.text
    assert sim.get(f"projects/{made['id']}").json()["default_branch"] == "trunk"
    listed = sim.get("projects").json()
    assert [p["default_branch"] for p in listed] == ["trunk"]
