"""python-gitlab, the client users script GitLab with, against a sim lab.

Files, tree, commits, branches, tags and users through the REST API, each served by
the lab's Gitaly node; and with the Gitaly token wrong, GitLab's own answers
(500 for reads, 400 with the CommandError text for commits), the gRPC code only in
the app node's log.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import gitlab
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.sim, pytest.mark.slow]

WRONG_TOKEN = "nodes.gitaly1.gitaly_token=not-the-token-the-app-uses-0123456789"


def client(lab: Any) -> gitlab.Gitlab:
    # GitLab writes its external_url (http://gitlab) into pagination links; the
    # lab is reached through a published port, so keep the URL we were given.
    gl = gitlab.Gitlab(lab.http_url, private_token=lab.admin_token, keep_base_url=True)
    gl.auth()
    return gl


def new_project(gl: gitlab.Gitlab, storage: str = "default") -> Any:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    return gl.projects.create({"name": name, "path": name, "repository_storage": storage})


def test_files_commits_branches_tags(lab: Any, tmp_path: Path) -> None:
    gl = client(lab)
    assert gl.user is not None
    assert gl.user.username == "root"
    assert [u.username for u in gl.users.list(get_all=True)] == ["root"]
    project = new_project(gl, "storage1")

    project.files.create({"file_path": "README.md", "branch": "main", "content": "hello\n",
                          "commit_message": "Add README"})
    readme = project.files.get("README.md", ref="main")
    assert readme.decode() == b"hello\n"
    readme.content = "hello again\n"
    readme.save(branch="main", commit_message="Update README")
    assert project.files.raw("README.md", ref="main") == b"hello again\n"

    commit = project.commits.create({"branch": "main", "commit_message": "Two files", "actions": [
        {"action": "create", "file_path": "docs/a.md", "content": "a\n"},
        {"action": "create", "file_path": "docs/b.md", "content": "Yg==", "encoding": "base64"},
    ]})
    assert commit.stats == {"additions": 2, "deletions": 0, "total": 2}
    assert project.commits.get(commit.id).title == "Two files"
    tree = project.repository_tree(get_all=True)
    assert [(e["path"], e["type"]) for e in tree] == [("docs", "tree"), ("README.md", "blob")]

    # 25 more commits: get_all must follow X-Next-Page/Link past the first page.
    for i in range(25):
        project.files.create({"file_path": f"n{i}.txt", "branch": "main", "content": f"{i}\n",
                              "commit_message": f"n{i}"})
    titles = [c.title for c in project.commits.list(get_all=True, per_page=10)]
    assert (len(titles), titles[0], titles[-1]) == (28, "n24", "Add README")

    branch = project.branches.create({"branch": "feature", "ref": "main"})
    assert (branch.name, branch.protected, branch.default) == ("feature", False, False)
    main = project.branches.get("main")
    assert (main.protected, main.default, main.developers_can_push) == (True, True, False)
    assert [b.name for b in project.branches.list(get_all=True)] == ["feature", "main"]
    project.branches.delete("feature")
    assert [b.name for b in project.branches.list(get_all=True)] == ["main"]
    with pytest.raises(gitlab.GitlabDeleteError) as refused:
        project.branches.delete("main")
    assert refused.value.response_code == 400
    assert "The default branch of a project cannot be deleted." in str(refused.value)

    tag = project.tags.create({"tag_name": "v1.0", "ref": "main", "message": "First"})
    head = project.commits.get("main").id
    assert (tag.name, tag.message, tag.commit["id"]) == ("v1.0", "First", head)
    assert [t.name for t in project.tags.list(get_all=True)] == ["v1.0"]
    project.tags.delete("v1.0")
    assert project.tags.list(get_all=True) == []

    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.files.get("nope.txt", ref="main")
    assert (missing.value.response_code, missing.value.error_message) == (404,
                                                                          "404 File Not Found")

    # What the API wrote is in the Gitaly node's repository: a plain clone shows it.
    url = project.http_url_to_repo.replace("http://gitlab", lab.http_url).replace(
        "://", f"://root:{lab.admin_token}@", 1)
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], check=True,
                   capture_output=True, timeout=60)
    assert (tmp_path / "clone" / "README.md").read_text() == "hello again\n"
    assert (tmp_path / "clone" / "docs" / "b.md").read_text() == "b"


def test_wrong_gitaly_token_gives_gitlabs_answers(lab_factory: Any) -> None:
    lab = lab_factory("scaled")
    gl = client(lab)
    project = new_project(gl)
    project.files.create({"file_path": "README.md", "branch": "main", "content": "x\n",
                          "commit_message": "Add README"})

    broken = lab_factory("scaled", sets=[WRONG_TOKEN])
    gl = client(broken)
    project = gl.projects.get(project.id)
    with pytest.raises(gitlab.GitlabGetError) as read:
        project.files.get("README.md", ref="main")
    assert (read.value.response_code, read.value.error_message) == (
        500, "500 Internal Server Error")
    with pytest.raises(gitlab.GitlabListError) as listed:
        project.commits.list()
    assert listed.value.response_code == 500
    with pytest.raises(gitlab.GitlabCreateError) as written:
        project.files.create({"file_path": "b.txt", "branch": "main", "content": "b\n",
                              "commit_message": "b"})
    assert (written.value.response_code, written.value.error_message) == (
        400, "7:permission denied.")
    assert "permission denied" in broken.logs("gitlab", tail=200)


def test_repository_storage_move(lab: Any) -> None:
    gl = client(lab)
    project = new_project(gl, "default")
    project.files.create({"file_path": "a.txt", "branch": "main", "content": "a\n",
                          "commit_message": "a"})
    project.repository_storage = "storage1"
    project.save()
    # Scheduled, as in GitLab: the answer still names the old storage.
    assert project.repository_storage == "default"
    deadline = time.monotonic() + 60
    while gl.projects.get(project.id).repository_storage != "storage1":
        assert time.monotonic() < deadline, "the storage move did not finish"
        time.sleep(0.5)
    assert project.files.raw("a.txt", ref="main") == b"a\n"
    assert "ReplicateRepository default:" in lab.logs("gitaly1", tail=200)


def test_the_fixtures_a_user_reaches_for(testlab: Any, python_gitlab: gitlab.Gitlab,
                                         lab_factory: Any) -> None:
    # Names that hide neither the lab package nor python-gitlab's module, and a client
    # on every lab the factory hands out.
    python_gitlab.auth()
    assert python_gitlab.user is not None
    assert python_gitlab.user.username == "root"
    assert python_gitlab.url == testlab.http_url
    assert lab_factory("scaled").client.api.current_user()["username"] == "root"
