"""The sim image's reading of gitlab.rb: host `ruby` runs the image's own evaluator
on each config dialect the renderer emits, then simconfig applies Omnibus' defaults."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import skip_or_fail

TOKEN = "ab" * 32
SECRETS = {"gitlab_shell": {"secret_token": "cd" * 64 + "\n"}}


def require_ruby() -> None:
    if shutil.which("ruby") is None:
        skip_or_fail("host ruby is needed to evaluate gitlab.rb (apt-get install ruby)")


@pytest.fixture(scope="module")
def simconfig() -> ModuleType:
    return importlib.import_module("labsim.common.simconfig")


def node(simconfig: ModuleType, tmp_path: Path, text: str,
         secrets: dict[str, Any] | None = None, env: dict[str, str] | None = None,
         version: str | None = None) -> dict[str, Any]:
    require_ruby()
    rb = tmp_path / "gitlab.rb"
    rb.write_text(text)
    raw = simconfig.evaluate(str(rb), env={"PATH": "/usr/bin:/bin", **(env or {})})
    release = simconfig.Version.parse(version) if version else None
    result: dict[str, Any] = simconfig.effective(raw, secrets if secrets is not None else SECRETS,
                                                 release)
    return result


GITALY_ONLY = """
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
prometheus['enable'] = false
alertmanager['enable'] = false
gitlab_exporter['enable'] = false
gitlab_kas['enable'] = false
gitlab_rails['auto_migrate'] = false
gitlab_rails['internal_api_url'] = 'http://gitlab'
"""


def test_configuration_dialect(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, "roles(['gitaly_role'])\n" + GITALY_ONLY + f"""
gitaly['configuration'] = {{
  listen_addr: '0.0.0.0:8075',
  auth: {{ token: '{TOKEN}' }},
  storage: [
    {{ name: 'default', path: '/var/opt/gitlab/git-data/repositories' }},
    {{ name: 'storage1', path: '/var/opt/gitlab/git-data-storage1/repositories' }},
  ],
}}
""")
    assert conf["app"] is None
    gitaly = conf["gitaly"]
    assert gitaly["listen_addr"] == "0.0.0.0:8075"
    assert gitaly["tls_listen_addr"] == ""
    assert gitaly["token"] == TOKEN
    assert gitaly["storages"] == {
        "default": "/var/opt/gitlab/git-data/repositories",
        "storage1": "/var/opt/gitlab/git-data-storage1/repositories",
    }
    assert gitaly["internal_api_url"] == "http://gitlab"
    assert gitaly["hook_secret"] == "cd" * 64  # whitespace-trimmed shell secret


def test_configuration_tls(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, GITALY_ONLY + f"""
gitaly['configuration'] = {{
  tls_listen_addr: '0.0.0.0:9999',
  tls: {{ certificate_path: '/etc/gitlab/ssl/gitaly1.crt',
          key_path: '/etc/gitlab/ssl/gitaly1.key' }},
  auth: {{ token: '{TOKEN}' }},
  storage: [{{ name: 'default', path: '/var/opt/gitlab/git-data/repositories' }}],
}}
""")
    gitaly = conf["gitaly"]
    assert gitaly["listen_addr"] == ""
    assert gitaly["tls_listen_addr"] == "0.0.0.0:9999"
    assert gitaly["certificate_path"] == "/etc/gitlab/ssl/gitaly1.crt"
    assert gitaly["key_path"] == "/etc/gitlab/ssl/gitaly1.key"


def test_legacy_dialect_appends_repositories(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, GITALY_ONLY + "unicorn['enable'] = false\n" + f"""
gitaly['listen_addr'] = '0.0.0.0:8075'
gitaly['tls_listen_addr'] = '0.0.0.0:9999'
gitaly['certificate_path'] = '/etc/gitlab/ssl/gitaly1.crt'
gitaly['key_path'] = '/etc/gitlab/ssl/gitaly1.key'
gitaly['auth_token'] = '{TOKEN}'
git_data_dirs({{
  'default' => {{ 'path' => '/var/opt/gitlab/git-data' }},
  'storage1' => {{ 'path' => '/var/opt/gitlab/git-data-storage1' }},
}})
""", version="15.9.8")
    assert conf["app"] is None
    gitaly = conf["gitaly"]
    assert gitaly["listen_addr"] == "0.0.0.0:8075"
    assert gitaly["tls_listen_addr"] == "0.0.0.0:9999"
    assert gitaly["certificate_path"] == "/etc/gitlab/ssl/gitaly1.crt"
    assert gitaly["token"] == TOKEN
    assert gitaly["storages"] == {
        "default": "/var/opt/gitlab/git-data/repositories",
        "storage1": "/var/opt/gitlab/git-data-storage1/repositories",
    }


APP = f"""
external_url 'http://gitlab'
gitaly['enable'] = false
gitlab_rails['gitaly_token'] = '{TOKEN}'
"""


def test_app_git_data_dirs(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, APP + """
git_data_dirs({
  'default' => { 'gitaly_address' => 'tcp://gitaly1:8075' },
  'storage1' => { 'gitaly_address' => 'tcp://gitaly2:8075', 'gitaly_token' => 'other' },
})
""", version="17.11.7")
    assert conf["gitaly"] is None
    app = conf["app"]
    assert app["external_url"] == "http://gitlab"
    assert app["port"] == 80
    assert app["storages"] == {
        "default": {"address": "tcp://gitaly1:8075", "token": TOKEN},
        "storage1": {"address": "tcp://gitaly2:8075", "token": "other"},
    }
    assert app["shell_secret"] == "cd" * 64
    assert app["monitoring_whitelist"] == ["127.0.0.0/8", "::1/128"]


def test_app_repositories_storages_tls(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, APP + """
gitlab_rails['monitoring_whitelist'] = ['0.0.0.0/0']
gitlab_rails['repositories_storages'] = {
  'default' => { 'gitaly_address' => 'tls://gitaly1:9999' },
}
""")
    assert conf["app"]["storages"] == {"default": {"address": "tls://gitaly1:9999",
                                                   "token": TOKEN}}
    assert conf["app"]["monitoring_whitelist"] == ["0.0.0.0/0"]


def test_single_node_defaults(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, "external_url 'http://gitlab'\n")
    assert conf["gitaly"]["socket_path"] == "/var/opt/gitlab/gitaly/gitaly.socket"
    assert conf["gitaly"]["storages"] == {"default": "/var/opt/gitlab/git-data/repositories"}
    assert conf["gitaly"]["token"] == ""
    assert conf["gitaly"]["internal_api_url"] == "http://localhost:80"
    assert conf["app"]["storages"] == {
        "default": {"address": "unix:/var/opt/gitlab/gitaly/gitaly.socket", "token": ""}}


def test_gitaly_node_without_internal_api_url(simconfig: ModuleType, tmp_path: Path) -> None:
    text = GITALY_ONLY.replace("gitlab_rails['internal_api_url'] = 'http://gitlab'\n", "")
    conf = node(simconfig, tmp_path, "roles(['gitaly_role'])\n" + text)
    assert conf["gitaly"]["internal_api_url"] == ""


def test_gitaly_secret_preferred_over_shell_secret(simconfig: ModuleType,
                                                   tmp_path: Path) -> None:
    secrets = {**SECRETS, "gitaly": {"gitlab_secret": "ee" * 64}}
    conf = node(simconfig, tmp_path, "external_url 'http://gitlab'\n", secrets)
    assert conf["gitaly"]["hook_secret"] == "ee" * 64
    assert conf["app"]["shell_secret"] == "cd" * 64


def test_omnibus_config_env_is_evaluated_first(simconfig: ModuleType, tmp_path: Path) -> None:
    env = {"GITLAB_OMNIBUS_CONFIG": "gitlab_rails['gitaly_token'] = 'from-env'; "
                                    "gitlab_rails['monitoring_whitelist'] = ['10.0.0.0/8']"}
    conf = node(simconfig, tmp_path, APP, env=env)
    assert conf["app"]["storages"]["default"]["token"] == TOKEN  # the file wins
    assert conf["app"]["monitoring_whitelist"] == ["10.0.0.0/8"]


def test_printing_in_gitlab_rb_keeps_json_clean(simconfig: ModuleType, tmp_path: Path) -> None:
    conf = node(simconfig, tmp_path, "puts 'hello'\n" + APP)
    assert conf["app"]["external_url"] == "http://gitlab"


def test_syntax_error_names_file_and_line(simconfig: ModuleType, tmp_path: Path) -> None:
    require_ruby()
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://gitlab'\ngitaly['configuration'] = {\n  listen_addr: ,\n")
    with pytest.raises(simconfig.ConfigError) as info:
        simconfig.evaluate(str(rb))
    assert f"{rb}:3" in str(info.value)
    assert "syntax error" in str(info.value)


def test_runtime_error_names_file_and_line(simconfig: ModuleType, tmp_path: Path) -> None:
    require_ruby()
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://gitlab'\nnot_a_setting.frobnicate(1)\n")
    with pytest.raises(simconfig.ConfigError, match=rf"{rb}:2"):
        simconfig.evaluate(str(rb))


def test_reading_unset_keys_leaves_no_settings(simconfig: ModuleType, tmp_path: Path) -> None:
    require_ruby()
    rb = tmp_path / "gitlab.rb"
    rb.write_text("""
external_url 'http://gitlab'
enabled = puma['enable']
port = nginx['listen_port']
deep = gitlab_rails['a']['b']['c']
ssl = nginx['ssl']
ssl['port'] = 8443
gitaly['configuration'] = {}
""")
    raw = simconfig.evaluate(str(rb), env={"PATH": "/usr/bin:/bin"})
    # Reads leave nothing behind; a value set through a read, and an explicit {}, stay.
    assert raw == {"external_url": "http://gitlab", "nginx": {"ssl": {"port": 8443}},
                   "gitaly": {"configuration": {}}}
    conf = simconfig.effective(raw, SECRETS)
    assert conf["app"]["port"] == 80
    assert conf["gitaly"]["storages"] == {"default": "/var/opt/gitlab/git-data/repositories"}


def test_missing_secrets_file_is_generated(simconfig: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "gitlab-secrets.json"
    data = simconfig.load_secrets(str(path))
    assert len(data["gitlab_shell"]["secret_token"]) == 128
    assert path.stat().st_mode & 0o777 == 0o600
    assert simconfig.load_secrets(str(path)) == data


@pytest.mark.parametrize(("version", "text", "message"), [
    ("13.0.14", "gitlab_monitor['enable'] = false\n",
     "Mixlib::Config::UnknownConfigOptionError: Reading unsupported config value "
     "gitlab_monitor."),
    ("18.0.0", "git_data_dirs({ 'default' => { 'gitaly_address' => 'tcp://g:8075' } })\n",
     "Removed configurations found in gitlab.rb. Aborting reconfigure.\n"
     "* git_data_dirs has been deprecated since 17.8 and was removed in 18.0."),
    ("16.0.0", "gitaly['auth_token'] = 'x'\n",
     "* gitaly['auth_token'] has been deprecated since 15.10 and was removed in 16.0."),
    ("15.11.13", "gitaly['listen_addr'] = 'a'\ngitaly['configuration'] = { listen_addr: 'b' }\n",
     "Legacy configuration key 'listen_addr' can't be set when its new key "
     "'configuration.listen_addr' is set."),
])
def test_reconfigure_aborts_as_the_release_does(simconfig: ModuleType, tmp_path: Path,
                                                 version: str, text: str, message: str) -> None:
    require_ruby()
    rb = tmp_path / "gitlab.rb"
    rb.write_text(text)
    raw = simconfig.evaluate(str(rb), env={"PATH": "/usr/bin:/bin"})
    with pytest.raises(simconfig.ConfigError) as info:
        simconfig.check_release(raw, simconfig.Version.parse(version))
    assert message in str(info.value)
    # The release before the change accepts the same file.
    older = {"13.0.14": "12.10.14", "18.0.0": "17.11.7", "16.0.0": "15.11.13",
             "15.11.13": "15.9.8"}[version]
    simconfig.check_release(raw, simconfig.Version.parse(older))


def test_node_version_comes_from_the_compose_environment(simconfig: ModuleType) -> None:
    assert str(simconfig.node_version({"GITLAB_TESTLAB_VERSION": "12.10.14"})) == "12.10.14"
    assert str(simconfig.node_version({})) == simconfig.DEFAULT_VERSION


@pytest.mark.parametrize(("gitaly", "version", "expected"), [
    ({"configuration": {"auth": {"transitioning": True}}}, "17.11.7", True),
    ({"auth_transitioning": True}, "15.9.8", True),
    # Each release reads its own spelling only: 16.0 removed the legacy key, and
    # gitaly['configuration'] means nothing before 15.10.
    ({"auth_transitioning": True}, "16.0.0", False),
    ({"configuration": {"auth": {"transitioning": True}}}, "15.9.8", False),
    ({"configuration": {"auth": {"transitioning": "yes"}}}, "17.11.7", False),
])
def test_auth_transitioning_in_each_release_spelling(simconfig: ModuleType, gitaly: dict[str, Any],
                                                     version: str, expected: bool) -> None:
    from lab.omnibus.release import Version

    conf = simconfig.gitaly_settings({"gitaly": gitaly}, Version.parse(version))
    assert conf["transitioning"] is expected
