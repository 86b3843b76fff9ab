"""What GitLab, Gitaly and Workhorse answer, release by release: the texts and the eras.

One place for the messages a user sees (API bodies, git's output, log lines); the
release at which each changed is a name from lab.omnibus.release (the one table of
release boundaries), its source told here beside the text. The sim image carries this
very file (standard library only), so the sim and the tests that check it can never
disagree about a text. Sources are named beside each fact and in docs/fidelity.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lab.omnibus.release import (
    CE_API_REPOSITORY_STORAGE,
    CREATE_LOGS_TO_APP_LOGGER,
    CREATE_WITHOUT_SHELL,
    FIRST,
    GITALY_API_CLIENT_OPTS,
    GITALY_DROPS_SHARED_SECRET,
    GITALY_DROPS_V1_TOKENS,
    GITALY_GITLAB_SECTION,
    GITALY_PLAIN_EXIT,
    GITALY_SENDS_JWT,
    GITALY_STORAGE_DOESNT_EXIST,
    GITALY_STORAGE_WRAPPED,
    GO_HOOKS,
    GRPC_DEBUG_IN_MESSAGE,
    GRPC_REASON_IN_MESSAGE,
    HASHED_STORAGE_DEFAULT,
    PUMA_DEFAULT,
    RAILS_VERIFIES_JWT,
    UNBOUNDED,
    UNSTRUCTURED_LOGS_OFF,
    WORKHORSE_503,
    Version,
)

# -- The table of eras: every text the sim shows that changed between releases ---------
#
# One row per behaviour and era: the first release that shows the text, the text (a
# str.format template), and where it was read. ``text(behaviour, rel)`` takes the newest
# row not newer than ``rel``; docs/fidelity.md's "Texts by release" section is made from
# these rows by scripts/fidelity_eras.py (tests/unit/test_eras_table.py keeps them equal).


@dataclass(frozen=True)
class Era:
    behaviour: str
    since: Version
    text: str
    source: str


HOOK_UNREACHABLE = "hook: internal API unreachable"
HOOK_API_ERROR = "hook: internal API answered an error that is not a JSON message"
GITALY_STORAGE_MISSING = "Gitaly start: a storage's folder is missing"
GITALY_API_URL_BAD = "Gitaly start: its GitLab API URL is unset or not http(s)/http+unix"
GITALY_API_SECRET_UNREADABLE = "Gitaly start: its GitLab API secret file can't be read"
WORKHORSE_UNAVAILABLE = "git over HTTP: Gitaly unavailable (Workhorse info/refs)"
PROJECT_CREATE_FAILED = "POST /projects: CreateRepository failed (the model's message)"
STORAGE_PATH = "new project: its repository's path on the storage (Gitaly's relative_path)"
GIT_HTTP_DENIED = "git over HTTP: missing or wrong credentials (401, text/plain)"
GIT_HTTP_NOT_SMART = "git over HTTP: info/refs without a smart-HTTP service, signed in (403)"
API_NAME_PATH_MISSING = "POST /projects: neither name nor path (400)"
API_VISIBILITY_INVALID = "POST /projects: visibility not private, internal or public (400)"
WORKHORSE_NOT_SMART = ("git over HTTP: info/refs for a command Rails allows that is not smart "
                       "HTTP (git-upload-archive), Workhorse's answer")
GITALY_V1_TOKEN = "Gitaly auth: a v1 token (Bearer <base64 of the shared secret>)"
GRPC_CONNECT_FAILED = "Rails' gRPC call: no connection to Gitaly (the message after 14:)"
GRPC_CONNECT_DEBUG = "Rails' gRPC call: no connection to Gitaly (debug_error_string)"
GRPC_PEER_DEBUG = "Rails' gRPC call: Gitaly answered an error (debug_error_string)"
PROJECT_DEFAULT_BRANCH = ("the project entity's default_branch (POST /projects, GET /projects/:id)")
PROJECT_CREATE_LOG = ("POST /projects failed: where Rails logs \"Unable to save project. "
                      "Error: ...\" (under /var/log/gitlab/gitlab-rails)")
GRPC_RUBY_MESSAGE = ("Rails' gRPC call: the GRPC::BadStatus message (API 400 body, "
                     "\"Unable to save project\" log line)")
GRPC_TLS_UNTRUSTED_LOG = ("Rails' gRPC: the C core's stderr line when Gitaly's certificate "
                          "is not trusted")
API_REPOSITORY_STORAGE = ("POST /projects, PUT /projects/:id: the repository_storage parameter "
                          "in CE (what the sim does with it)")
_GITALY = "gitlab-org/gitaly (mirror xuxiaowei-io/gitaly)"
#: The text of the GITALY_V1_TOKEN row of a release that still takes v1 tokens.
V1_ACCEPTED = "accepted beside v2 (decodes to the secret: OK, else 7:permission denied)"
#: The first era's rows pass the sim's own C core text through (Debian's python3-grpcio
#: 1.51.1 in the sim image): the grpc gem of those releases was not read here.
_LIVE = "the sim's own C core text, passed through (grpc 1.51.1): "
_GRPC_OLD = ("gitlabhq Gemfile: grpc ~> 1.30.2 at 13.3 (gitaly 13.3.0-rc1), ~> 1.42.0 at 15.1, "
             "15.5 and 15.9 (Gitaly's lock-step ruby/Gemfile.lock: 1.19.0 at v1.42.0, 1.27.0 at "
             "v12.10.0, 1.42.0 up to v15.11.13), still ~> 1.42.0 in 16.0 (the parent of "
             "gitlab-org/gitlab 7ad293af, which 16.0.0 predates); C core's form as grpc 1.28.1 "
             "and 1.40 print it (grpc/grpc#23340, #27396)")
_GRPC_NEW = ("gitlab-org/gitlab!121899 \"Update grpc to v1.55.0\" (commit 7ad293af: Gemfile "
             "~> 1.42.0 -> ~> 1.55.0; grpc/grpc#29869 \"Enable GRPC_ERROR_IS_ABSEIL_STATUS\" "
             "gave debug_error_string this form), first in 16.1 (after 16.0.0: it pins "
             "google-protobuf >= 3.23.1; omnibus-gitlab 5a7c6080a \"Support grpc gems after "
             "v1.48.0\" is first in 16.1.0+ce.0); ~> 1.60.0 at 16.10 (gitaly 16.10.0-rc1), "
             "= 1.63.0 later (gitlab-org/gitlab#473169)")

ERAS: tuple[Era, ...] = (
    Era(HOOK_UNREACHABLE, FIRST,
        "Failed to authorize your Git request: internal API unreachable",
        f"{_GITALY} ruby/gitlab-shell/lib/gitlab_access.rb GitlabAccess#exec (rescue "
        "GitlabNet::ApiUnreachableError, raised by lib/http_helper.rb on any connection "
        "error), v1.42.0-v13.1.0"),
    Era(HOOK_UNREACHABLE, GO_HOOKS, "Internal API unreachable",
        "gitlab-shell client/gitlabnet.go DoRequest (Gitaly v13.2.0 go.mod pins it), then "
        f"{_GITALY} internal/gitlab/client/gitlabnet.go (v15.4.0-v16.7.0)"),
    Era(HOOK_API_ERROR, FIRST, "API is not accessible",
        f"{_GITALY} ruby/gitlab-shell/lib/gitlab_net.rb check_access: a JSON answer of "
        "200/300/401/404/503 gives its message, anything else API_INACCESSIBLE_MESSAGE "
        "(v1.42.0-v13.1.0)"),
    Era(HOOK_API_ERROR, GO_HOOKS, "Internal API error ({status})",
        "gitlab-shell client/gitlabnet.go parseError, then "
        f"{_GITALY} internal/gitlab/client/gitlabnet.go parseError (v15.4.0-v16.7.0)"),
    Era(GITALY_STORAGE_MISSING, FIRST,
        'level=fatal msg="load config" config_path={config} '
        'error="storage paths have to exist {{{name} {path}}}"',
        f"{_GITALY} internal/config/config.go validateStorages, cmd/gitaly/main.go "
        "(logrus Fatal \"load config\") v1.42.0-v12.10.0 (GitLab 11.11 ships Gitaly 1.42)"),
    Era(GITALY_STORAGE_MISSING, GITALY_STORAGE_WRAPPED,
        'level=fatal msg="load config: config_path \\"{config}\\": storage {{Name:{name} '
        'Path:{path}}} path must exist: stat {path}: no such file or directory"',
        f"{_GITALY} internal/config/config.go (v13.0.0), internal/gitaly/config/config.go "
        "(v13.12.0-v14.2.0) validateStorages; cmd/gitaly/main.go configure + log.Fatal"),
    Era(GITALY_STORAGE_MISSING, GITALY_STORAGE_DOESNT_EXIST,
        'level=fatal msg="load config: config_path \\"{config}\\": invalid config: storage '
        'path \\"{path}\\" for storage \\"{name}\\" doesn\'t exist"',
        f"{_GITALY} internal/gitaly/config/config.go validateStorages, cmd/gitaly/main.go "
        "loadConfig (\"invalid config: %w\") v14.3.0-v15.9.0, internal/cli/gitaly/serve.go "
        "log.Fatal v15.10.0-v16.2.0"),
    Era(GITALY_STORAGE_MISSING, GITALY_PLAIN_EXIT,
        'load config: config_path "{config}": invalid config: storage path "{path}" for '
        'storage "{name}" doesn\'t exist',
        f"{_GITALY} internal/cli/gitaly/serve.go returns cli.Exit(err, 1) (v16.3.0-v16.7.0; "
        "later releases read as the same)"),
    # The message only: its log framing (logrus fatal, later a returned error) is not
    # reproduced. Before GITALY_GITLAB_SECTION neither stops Gitaly (an empty text):
    # gitlab-shell's Ruby hooks read the URL and the secret on each push.
    Era(GITALY_API_URL_BAD, FIRST, "",
        f"{_GITALY} cmd/gitaly/main.go builds no GitLab API client (v1.42.0-v13.0.0)"),
    Era(GITALY_API_SECRET_UNREADABLE, FIRST, "",
        f"{_GITALY} cmd/gitaly/main.go builds no GitLab API client (v1.42.0-v13.0.0)"),
    Era(GITALY_API_URL_BAD, GITALY_GITLAB_SECTION,
        "could not create GitLab API client: {url} is not a valid url",
        f"{_GITALY} internal/service/hook/access.go NewGitlabAPI (gitlab-shell client."
        "NewHTTPClient returns nil for another prefix), cmd/gitaly/main.go log.Fatalf "
        "(v13.1.0-v13.5.0)"),
    Era(GITALY_API_URL_BAD, GITALY_API_CLIENT_OPTS,
        "could not create GitLab API client: building new HTTP client for GitLab API: "
        "unknown GitLab URL prefix",
        f"{_GITALY} internal/gitaly/hook/access.go (v13.6.0-v13.9.0), internal/gitlab/"
        "http_client.go NewHTTPClient (v13.12.0-v16.7.0) wrapping gitlab-shell client/"
        "httpclient.go NewHTTPClientWithOpts (go.mod pins 3f9890ef73dc, 50da611814d2, v14.10.0; "
        "then internal/gitlab/client/httpclient.go from v15.4.0)"),
    Era(GITALY_API_SECRET_UNREADABLE, GITALY_GITLAB_SECTION,
        "could not create GitLab API client: reading secret file: {error}",
        f"{_GITALY} internal/service/hook/access.go (v13.1.0), internal/gitlab/http_client.go "
        "(v13.12.0-v16.7.0) os.ReadFile; cmd/gitaly/main.go, internal/cli/gitaly/serve.go "
        "v16.7.0 (\"could not create GitLab API client: %w\")"),
    Era(WORKHORSE_UNAVAILABLE, FIRST, "500 Internal server error",
        "gitlab-workhorse internal/git/info-refs.go helper.Fail500 (v8.45.0-v8.53.0)"),
    Era(WORKHORSE_UNAVAILABLE, WORKHORSE_503,
        "503 The git server, Gitaly, is not available at this time. Please contact your "
        "administrator.",
        "gitlab-org/gitlab workhorse/internal/git/info-refs.go (test TestGetInfoRefsHandler); "
        "the text is Rails' from gitlab!71120 (14.4), the boundary the sim takes"),
    Era(PROJECT_CREATE_FAILED, FIRST, "Failed to create repository via gitlab-shell",
        "gitlabhq app/models/project.rb create_repository with Gitlab::Shell#add_repository "
        "(12.x)"),
    Era(PROJECT_CREATE_FAILED, CREATE_WITHOUT_SHELL, "Failed to create repository",
        "gitlabhq app/models/project.rb create_repository once Gitlab::Shell stopped creating "
        "repositories (gitlab-org/gitlab c861a0a0; 13.0 the first release without it)"),
    Era(PROJECT_CREATE_LOG, FIRST, "production.log",
        "gitlabhq app/services/projects/create_service.rb #fail: Rails.logger.error(log_message) "
        "(11.x file; 12.x adds \"# rubocop:disable Gitlab/RailsLogger\"), one plain line as "
        "gitlab-foss#58703 shows it (11.8.1, production.log: \"Unable to save project. Error: "
        "4:Deadline Exceeded\") and gitlab-org/gitlab#235125 (13.0.6)"),
    Era(PROJECT_CREATE_LOG, CREATE_LOGS_TO_APP_LOGGER, "application.log, application_json.log",
        "gitlabhq app/services/projects/create_service.rb #fail: Gitlab::AppLogger.error "
        "(13.x file with Service.create_from_active_default_integrations(..., with_templates: "
        "true, group-level integrations); its first release not pinned: after 13.0.6, by that "
        "13.x file; the sim takes 13.1); lib/gitlab/app_logger.rb "
        "MultiDestinationLogger over AppTextLogger (\"#{timestamp.to_s(:long)}: #{msg}\") "
        "and AppJsonLogger (gitlab!22379, 12.7; UNSTRUCTURED_RAILS_LOG 'true' by default)"),
    Era(PROJECT_CREATE_LOG, UNSTRUCTURED_LOGS_OFF, "application_json.log",
        "gitlab!111046 \"UNSTRUCTURED_RAILS_LOG disabled by default\", gitlab!112910 removes it "
        "(lib/gitlab/app_logger.rb: loggers [Gitlab::AppJsonLogger]); gitlab-org/gitlab#409310: "
        "\"Unstructured logs got disabled by default in 15.10 and removed in 15.11\""),
    Era(PROJECT_DEFAULT_BRANCH, FIRST,
        "null while the repository has no branch, then the root ref (Gitaly's "
        "FindDefaultBranchName: the only branch, HEAD's, main, master, the first)",
        f"{_GITALY} FindDefaultBranchName: internal/service/ref/refs.go DefaultBranchName "
        "(v13.1.0, \"Return empty ref name if there are no branches\"), internal/git/"
        "localrepo/refs.go GetDefaultBranch (v15.9.0: 0 branches \"\"; v16.7.0: HEAD, main, "
        "master, first branch, else \"\"); gitlabhq lib/gitlab/git.rb branch_name (nil for "
        "anything but refs/heads/...); Project#default_branch \"repository.root_ref if "
        "repository.exists?\" (app/models/project.rb, 11.x-12.x), then app/models/concerns/"
        "has_repository.rb \"root_ref || default_branch_from_preferences\" (the instance's "
        "default_branch_name, a text column added without a default: db/migrate "
        "AddDefaultBranchNameToApplicationSettings, 13.2; a new installation has none). The "
        "master/main change of 14.0 names the branch a new repository's HEAD points to, not "
        "this field"),
    Era(STORAGE_PATH, FIRST, "{full_path}.git",
        "gitlabhq app/models/storage/legacy_project.rb (disk_path is the project's full path) "
        "while application_settings.hashed_storage_enabled defaulted to false "
        "(db/migrate/20170807071105_add_hashed_storage_to_settings.rb, 10.0)"),
    Era(STORAGE_PATH, HASHED_STORAGE_DEFAULT, "@hashed/{h1}/{h2}/{digest}.git",
        "gitlabhq app/models/storage/hashed.rb (SHA-256 of the project id, its first two and "
        "next two hex digits as folders); migration EnableHashedStorageByDefault "
        "(change_column_default application_settings.hashed_storage_enabled true), "
        "gitlab-ce!29586 with EE port gitlab-ee!14129; doc/administration/"
        "repository_storage_types.md version history: the default for new installations "
        "in 12.0 (for all new and renamed projects in 13.0); a lab is a new installation"),
    Era(GIT_HTTP_DENIED, FIRST, "HTTP Basic: Access denied",
        "gitlabhq app/controllers/projects/git_http_client_controller.rb authenticate_user: "
        "render plain \"HTTP Basic: Access denied\\n\", 401, WWW-Authenticate Basic "
        "realm=\"GitLab\" (11.x-12.x file), the same in app/controllers/repositories/"
        "git_http_client_controller.rb of 13.x and 14.0 (forks mehulagg/gitlab, "
        "nickbrandt/GitLab); the two longer texts of later releases are not modelled: their "
        "first releases are not pinned (docs/fidelity.md, \"What the sim does not reproduce\")"),
    Era(GIT_HTTP_NOT_SMART, FIRST, "The command you're trying to execute is not allowed.",
        "Workhorse asks Rails first: gitlab-workhorse internal/upstream/routes.go (info/refs "
        "-> git.GetInfoRefsHandler = repoPreAuthorizeHandler) and internal/api/api.go pass a "
        "non-200 answer back (v8.7.0-v8.53.0), so its own 404 \"Not Found\" for a dumb "
        "request (internal/git/info-refs.go) is never reached; Rails: GitHttpController "
        "before_action :access_check with git_command = params[:service], "
        "lib/gitlab/git_access.rb check_command_existence! (command_not_allowed, checked "
        "before the project), render_403_with_exception (plain text, 403)"),
    Era(WORKHORSE_NOT_SMART, FIRST, "404 Not Found",
        "gitlab-workhorse internal/git/info-refs.go handleGetInfoRefs (v8.7.0-v8.53.0), "
        "gitlab-org/gitlab workhorse/internal/git/info-refs.go later: http.Error \"Not "
        "Found\" 404 for any service but git-upload-pack/git-receive-pack; Rails lets "
        "git-upload-archive through (lib/gitlab/git_access.rb DOWNLOAD_COMMANDS)"),
    Era(API_NAME_PATH_MISSING, FIRST,
        "name, path are missing, at least one parameter must be provided",
        "gitlabhq lib/api/projects.rb POST /projects: optional :name, optional :path, "
        "at_least_one_of :name, :path (12.x file and newer); ruby-grape/grape "
        "lib/grape/validations/validators/at_least_one_of.rb (params: all keys) and "
        "lib/grape/locale/en.yml (format \"%{attributes} %{message}\", at_least_one), "
        "rendered by Grape's JSON error formatter under \"error\""),
    Era(API_VISIBILITY_INVALID, FIRST, "visibility does not have a valid value",
        "gitlabhq lib/api/helpers/projects_helpers.rb optional :visibility, values: "
        "Gitlab::VisibilityLevel.string_values (12.x file and newer); Grape's values "
        "validator message after the name (gitlabhq spec/requests/api/groups_spec.rb expects "
        "this very error for an invalid visibility)"),
    Era(GITALY_V1_TOKEN, FIRST, V1_ACCEPTED,
        f"{_GITALY} auth/token.go CheckToken (case \"v1\": base64.StdEncoding of the token, "
        "constant-time compare) v1.42.0-v12.9.0"),
    Era(GITALY_V1_TOKEN, GITALY_DROPS_V1_TOKENS, "authentication required",
        f"{_GITALY} auth/token.go v12.10.0 (54465275b \"Drop support for Gitaly v1 "
        "authentication\"): ExtractAuthInfo refuses fewer than three parts, CheckToken "
        "answers errUnauthenticated"),
    Era(GRPC_CONNECT_FAILED, FIRST, "failed to connect to all addresses", _GRPC_OLD),
    Era(GRPC_CONNECT_FAILED, GRPC_REASON_IN_MESSAGE,
        "failed to connect to all addresses; last error: {reason}", _LIVE + _GRPC_NEW),
    Era(GRPC_CONNECT_DEBUG, FIRST,
        '{{"created":"@{created}","description":"Failed to pick subchannel","file":'
        '"src/core/ext/filters/client_channel/client_channel.cc","file_line":3981,'
        '"referenced_errors":[{{"created":"@{created}","description":"failed to connect to '
        'all addresses","file":"src/core/ext/filters/client_channel/lb_policy/pick_first/'
        'pick_first.cc","file_line":394,"grpc_status":14}}]}}',
        _GRPC_OLD + "; file_line as 1.28.1 prints it (1.30.2's and 1.42.0's not pinned)"),
    Era(GRPC_CONNECT_DEBUG, GRPC_REASON_IN_MESSAGE,
        'UNKNOWN:failed to connect to all addresses; last error: {reason} '
        '{{grpc_status:14, created_time:"{time}"}}', _LIVE + _GRPC_NEW),
    Era(GRPC_PEER_DEBUG, FIRST,
        '{{"created":"@{created}","description":"Error received from peer {peer}","file":'
        '"src/core/lib/surface/call.cc","file_line":1055,"grpc_message":{message},'
        '"grpc_status":{code}}}',
        "grpc src/core/lib/surface/call.cc recv_trailing_filter (\"Error received from peer "
        "%s\", grpc/grpc#18440, 2019-03) in grpc_error's JSON, as C core prints it at "
        "file_line 1055 (p4lang/tutorials#324, 2019-12); " + _GRPC_OLD),
    Era(GRPC_PEER_DEBUG, GRPC_REASON_IN_MESSAGE,
        'UNKNOWN:Error received from peer {peer} {{grpc_message:"{message}", '
        'grpc_status:{code}, created_time:"{time}"}}', _LIVE + _GRPC_NEW),
    Era(GRPC_RUBY_MESSAGE, FIRST, "{code}:{details}",
        "grpc src/ruby/lib/grpc/errors.rb BadStatus#initialize before grpc/grpc#22876 (grpc "
        "1.30): super(\"#{code}:#{details}\"), no debug string; gitlab-foss#58703 (11.8.1 "
        "production.log: \"Unable to save project. Error: 4:Deadline Exceeded\"); Gitaly's "
        "lock-step ruby/Gemfile.lock: grpc 1.24.0 at v13.1.0 and v13.2.0"),
    Era(GRPC_RUBY_MESSAGE, GRPC_DEBUG_IN_MESSAGE, "{code}:{details}. debug_error_string:{debug}",
        "grpc src/ruby/lib/grpc/errors.rb BadStatus#initialize appends \". debug_error_string:\" "
        "and C core's string (grpc/grpc#22876, grpc 1.30); the JSON string's own braces only, "
        "as grpc-ruby 1.35 prints it (newrelic/newrelic-ruby-agent#569: \"2:StandardError: "
        "raised by test server. debug_error_string:{\\\"created\\\":...}\"); " + _GRPC_OLD),
    Era(GRPC_RUBY_MESSAGE, GRPC_REASON_IN_MESSAGE,
        "{code}:{details}. debug_error_string:{{{debug}}}",
        "grpc src/ruby/lib/grpc/errors.rb BadStatus#initialize: exception_message += \". "
        "debug_error_string:{#{debug_error_string}}\" (the braces came with grpc/grpc#29869: "
        "gitlab-org/gitlab 7ad293af \"added braces around the debug_error_string\"); "
        + _GRPC_NEW),
    Era(GRPC_TLS_UNTRUSTED_LOG, FIRST,
        "E{date} {time} {pid} ssl_transport_security.cc:1379] Handshake failed with fatal "
        "error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
        "CERTIFICATE_VERIFY_FAILED.",
        "grpc src/core/tsi/ssl_transport_security.cc gpr_log at ERROR, to puma's stderr (as "
        "grpc 1.29.1 prints it, robem/grpc_test README; the gem's BoringSSL names the reason "
        "1000007d CERTIFICATE_VERIFY_FAILED); " + _GRPC_OLD),
    Era(GRPC_TLS_UNTRUSTED_LOG, GRPC_REASON_IN_MESSAGE,
        "E{date} {time} {pid} ssl_transport_security.cc:1501] Handshake failed with fatal "
        "error SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed.",
        _LIVE + "OpenSSL's reason text, where the gem's BoringSSL says 1000007d "
        "CERTIFICATE_VERIFY_FAILED (not modelled); " + _GRPC_NEW),
    Era(API_REPOSITORY_STORAGE, FIRST,
        "ignored: the project goes to a storage picked from the admin setting "
        "repository_storages",
        "gitlabhq lib/api/helpers/projects_helpers.rb (CE, 11.x-12.8) does not declare it; "
        "only EE's ee/lib/ee/api/helpers/projects_helpers.rb optional_project_params_ee "
        "does, and lib/api/projects.rb passes declared_params(include_missing: false), so "
        "Grape drops it; app/models/concerns/has_repository.rb pick_repository_storage -> "
        "ApplicationSetting#pick_repository_storage (repository_storages.sample; default "
        "['default']); the setting is PUT /application/settings repository_storages "
        "(lib/api/settings.rb, admins only)"),
    Era(API_REPOSITORY_STORAGE, CE_API_REPOSITORY_STORAGE, "honoured (admins only)",
        "gitlab-org/gitlab!18721 \"Backport API support to move between repository "
        "storages/shards\" (replacing gitlab-foss!31934), CHANGELOG.md 12.9.0 (2020-03-22) "
        "\"Added\": CE's lib/api/helpers/projects_helpers.rb declares repository_storage"),
)


def era(behaviour: str, rel: Version) -> Era:
    """The row of ``behaviour`` that release ``rel`` shows."""
    rows = [e for e in ERAS if e.behaviour == behaviour and e.since <= rel]
    if not rows:
        raise KeyError(behaviour)
    return max(rows, key=lambda e: e.since)


def text(behaviour: str, rel: Version, **fields: object) -> str:
    return era(behaviour, rel).text.format(**fields)


def api_takes_repository_storage(rel: Version) -> bool:
    """Whether CE release ``rel``'s projects API honours ``repository_storage``; before,
    a new project's storage is only steered by the setting ``repository_storages``."""
    return era(API_REPOSITORY_STORAGE, rel).since >= CE_API_REPOSITORY_STORAGE


# -- Gitaly -> GitLab internal API: which header carries the shell secret ----------
#
# gitlab-shell v13.26.0 (client/gitlabnet.go, MR gitlab-shell!596) added the
# Gitlab-Shell-Api-Request JWT beside Gitlab-Shared-Secret (base64 of the secret);
# v14.13.0 dropped Gitlab-Shared-Secret. Gitaly used that client until it copied it
# (internal/gitlab/client/gitlabnet.go, v15.4.0): Gitaly v15.0/v15.1 pinned a 2021
# gitlab-shell (shared secret only), v15.2 pinned v14.8.0 and v15.3 v14.10.0 (both),
# v15.6.0 removed the shared secret (gitaly!4947, "enabled by default in the previous
# release"). Rails (lib/api/helpers.rb authenticate_by_gitlab_shell_token!) verifies
# the JWT behind the gitlab_shell_jwt_token flag from 15.3 (off by default, gitlab!86148),
# on by default from 15.5 (gitlab!100929), JWT only after the flag was removed.

SHARED_SECRET_HEADER = "Gitlab-Shared-Secret"
JWT_HEADER = "Gitlab-Shell-Api-Request"


def gitaly_sends(rel: Version) -> tuple[str, ...]:
    """The header names Gitaly's hooks of release ``rel`` send to the internal API."""
    names = []
    if rel < GITALY_DROPS_SHARED_SECRET:
        names.append(SHARED_SECRET_HEADER)
    if rel >= GITALY_SENDS_JWT:
        names.append(JWT_HEADER)
    return tuple(names)


def rails_verifies(rel: Version) -> str:
    """The header the internal API of release ``rel`` checks (feature flag at its default)."""
    return JWT_HEADER if rel >= RAILS_VERIFIES_JWT else SHARED_SECRET_HEADER


def internal_api_headers(rel: Version, secret: str,
                         encode_jwt: Callable[[str], str]) -> dict[str, str]:
    """The auth headers a release-``rel`` Gitaly sends; ``encode_jwt(secret)`` makes the JWT.

    The JWT's encoding is the caller's (lab.omnibus.auth today); only the choice is made here.
    """
    headers = {}
    for name in gitaly_sends(rel):
        if name == SHARED_SECRET_HEADER:
            headers[name] = base64.b64encode(secret.encode()).decode()
        else:
            headers[name] = encode_jwt(secret)
    return headers


def internal_api_authorized(rel: Version, headers: Mapping[str, str], secret: str,
                            verify_jwt: Callable[[str, str], bool],
                            secret_param: str | None = None) -> bool:
    """Whether the internal API of release ``rel`` lets a request with ``headers`` in.

    Before the JWT, Rails takes the ``secret_token`` parameter or the base64-decoded
    Gitlab-Shared-Secret header, chomps it and compares it with its own secret.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if rails_verifies(rel) == JWT_HEADER:
        token = lower.get(JWT_HEADER.lower())
        return bool(token) and verify_jwt(token or "", secret)
    given = secret_param
    if given is None and SHARED_SECRET_HEADER.lower() in lower:
        try:
            # Ruby's Base64.decode64 is lenient: it skips what is not base64.
            cleaned = re.sub(r"[^A-Za-z0-9+/]", "", lower[SHARED_SECRET_HEADER.lower()])
            given = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4)).decode(errors="replace")
        except (binascii.Error, ValueError):
            given = ""
    if given is None:
        return False
    return given.rstrip("\r\n") == secret.strip() and bool(secret.strip())


# -- Omnibus: reconfigure's last word --------------------------------------------------
#
# omnibus-ctl's `reconfigure` prints "#{display_name} Reconfigured!" once the Chef/Cinc
# run succeeded; Omnibus GitLab's display name is "gitlab". The toolkit waits for it
# (lab/omnibus/node.py) and the sim prints it.

RECONFIGURED = "gitlab Reconfigured!"


# -- The REST API's catch-all ------------------------------------------------------------
#
# lib/api/api.rb `rescue_from :all` -> lib/api/helpers.rb handle_api_exception: an exception
# no one rescued answers 500 with this message (the exception's class and text go to the
# log only, outside development).

API_INTERNAL_ERROR = "500 Internal Server Error"


def api_log_record(status: int, method: str, path: str) -> dict[str, Any]:
    """The fields of Rails' api_json.log line for one API request that the sim fills in
    (lib/gitlab/grape_logging/formatters/lograge_with_timestamp.rb writes every request:
    severity, time, then status, method, path, params, ...): a refused internal API call
    leaves a 401 here, not a message of its own."""
    return {"severity": "INFO", "status": status, "method": method, "path": path}


# -- Gitaly's hooks: what a push prints when the internal API says no ----------------
#
# Gitaly internal/gitlab/client/gitlabnet.go parseError (gitlab-shell client/gitlabnet.go
# before v15.4): a JSON {"message": "..."} body gives that message, anything else
# "Internal API error (<status>)"; no connection at all "Internal API unreachable".
# internal/gitlab/http_client.go Allowed: a 200 that is not application/json is
# "/allowed endpoint respond with unsupported content type: <type>".
# internal/gitaly/hook/prereceive.go NotAllowedError prints "GitLab: <message>".

#: The Ruby hooks' (before GO_HOOKS) statuses whose JSON answer is read (gitlab_net.rb).
_RUBY_READS = (200, 300, 401, 404, 503)


def internal_api_unreachable(rel: Version = UNBOUNDED) -> str:
    """What the hook of release ``rel`` says when the internal API can't be reached."""
    return text(HOOK_UNREACHABLE, rel)


def internal_api_error(status: int, body: bytes, rel: Version = UNBOUNDED,
                       content_type: str = "application/json") -> str:
    """The message Gitaly's hook prints for a non-2xx/3xx answer from the internal API."""
    if rel < GO_HOOKS:
        message = _json_message(body) if status in _RUBY_READS and \
            content_type.split(";")[0].strip().lower() == "application/json" else None
        return text(HOOK_API_ERROR, rel) if message is None else message
    message = _json_message(body)
    return text(HOOK_API_ERROR, rel, status=status) if message is None else message


def _json_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    message = data.get("message", "")
    # Go decodes into a string field: any other JSON type is a decoding error.
    return message if isinstance(message, str) else None


def allowed_content_type_error(content_type: str, rel: Version = UNBOUNDED) -> str | None:
    """Why a 200 from /allowed can't be used, or None when it is JSON."""
    mtype = content_type.split(";")[0].strip().lower()
    if rel < GO_HOOKS:
        return None if mtype == "application/json" else text(HOOK_API_ERROR, rel)
    if not mtype:
        return "/allowed endpoint respond with unsupported content type: mime: no media type"
    if mtype != "application/json":
        return f"/allowed endpoint respond with unsupported content type: {mtype}"
    return None


def hook_message(message: str) -> str:
    """What the pushing client sees after ``remote:``."""
    return f"GitLab: {message}"


# -- POST /api/v4/projects when Gitaly says no -----------------------------------------
#
# app/models/project.rb: after_create :check_repository_absence! calls RepositoryExists
# (lib/gitlab/shell.rb repository_exists? rescues only GRPC::Internal), so a Gitaly that
# refuses or can't be reached fails *that* call first; the error leaves Project#save,
# Projects::CreateService#execute rescues it and adds its message to errors[:base]; the
# API answers 400 with the errors (lib/api/projects.rb render_validation_error!). When
# RepositoryExists works but CreateRepository fails, Project#create_repository rescues
# it, tracks it (exceptions_json.log) and adds "Failed to create repository" ("... via
# gitlab-shell" while Gitlab::Shell created repositories), then the service raises
# 'Failed to create repository' and adds that too. The service logs "Unable to save
# project. Error: <message>" (the PROJECT_CREATE_LOG rows: production.log, application.log
# and application_json.log by release). Sources: app/models/project.rb,
# app/services/projects/create_service.rb, lib/gitlab/git/wraps_gitaly_errors.rb,
# lib/gitlab/exception_log_formatter.rb.

FAILED_TO_CREATE = "Failed to create repository"
ALREADY_ON_DISK = "There is already a repository with that name on disk"
GRPC_CLASSES = {
    1: "GRPC::Cancelled", 2: "GRPC::Unknown", 3: "GRPC::InvalidArgument",
    4: "GRPC::DeadlineExceeded", 5: "GRPC::NotFound", 6: "GRPC::AlreadyExists",
    7: "GRPC::PermissionDenied", 8: "GRPC::ResourceExhausted", 9: "GRPC::FailedPrecondition",
    10: "GRPC::Aborted", 11: "GRPC::OutOfRange", 12: "GRPC::Unimplemented", 13: "GRPC::Internal",
    14: "GRPC::Unavailable", 15: "GRPC::DataLoss", 16: "GRPC::Unauthenticated",
}
#: lib/gitlab/git/wraps_gitaly_errors.rb: the class Rails raises for a gRPC code.
_WRAPPED = {5: "Gitlab::Git::Repository::NoRepository", 3: "ArgumentError",
            4: "Gitlab::Git::CommandTimedOut"}


def gitaly_accepts_v1_tokens(rel: Version) -> bool:
    """Whether a release-``rel`` Gitaly still takes a v1 token (the GITALY_V1_TOKEN rows)."""
    return era(GITALY_V1_TOKEN, rel).text == V1_ACCEPTED


CONNECT_FAILED = "failed to connect to all addresses"


@dataclass(frozen=True)
class GrpcFailure:
    """A failed call as the grpc gem of a release shows it: the details after ``<code>:``,
    the debug_error_string, and a line the gem's C core writes to Rails' stderr (or None)."""

    details: str
    debug: str
    stderr: str | None = None


def grpc_call_failure(rel: Version, code: int, details: str, debug: str,
                      now: float | None = None) -> GrpcFailure:
    """What Rails of release ``rel`` shows for a call the sim's own C core failed with
    ``code``, ``details`` and ``debug`` (its 1.51.1 texts, see the GRPC_* rows).

    Before GRPC_REASON_IN_MESSAGE the debug string is grpc_error's JSON (an answer from
    Gitaly keeps its details), and a failed connection says only "failed to connect to all
    addresses", with no reason; an untrusted certificate shows only in the C core's stderr
    line."""
    newer = era(GRPC_CONNECT_FAILED, rel).since >= GRPC_REASON_IN_MESSAGE
    moment = time.time() if now is None else now
    peer = re.search(r"Error received from peer (\S+)", debug)
    if not newer and peer:
        return GrpcFailure(details, text(GRPC_PEER_DEBUG, rel, created=f"{moment:.9f}",
                                         peer=peer[1], message=json.dumps(details), code=code))
    if newer or code != 14 or not details.startswith(CONNECT_FAILED):
        return GrpcFailure(details, debug)
    reason = details.partition("; last error: ")[2].lower()
    stderr = None
    if "certificate verify failed" in reason or "certificate_verify_failed" in reason:
        clock = time.gmtime(moment)
        nanos = round(moment % 1 * 1e9) % 1_000_000_000
        stderr = text(GRPC_TLS_UNTRUSTED_LOG, rel, date=time.strftime("%m%d", clock),
                      time=time.strftime("%H:%M:%S", clock) + f".{nanos:09d}",
                      pid=f"{1:7d}")
    return GrpcFailure(text(GRPC_CONNECT_FAILED, rel),
                       text(GRPC_CONNECT_DEBUG, rel, created=f"{moment:.9f}"), stderr)


def rails_stderr_log(rel: Version) -> str:
    """Where Rails' web server's stderr goes under /var/log/gitlab (Omnibus runit services)."""
    return "puma/puma_stderr.log" if rel >= PUMA_DEFAULT else "unicorn/unicorn_stderr.log"


def grpc_ruby_message(code: int, details: str, debug: str = "", rel: Version = UNBOUNDED) -> str:
    """How the grpc gem of release ``rel`` prints a failed call (the GRPC_RUBY_MESSAGE rows):
    ``7:permission denied. debug_error_string:...``; without a debug string (the host's own
    client has none) only ``<code>:<details>``."""
    if not debug:
        return f"{code}:{details}"
    return text(GRPC_RUBY_MESSAGE, rel, code=code, details=details, debug=debug)


def repository_disk_path(rel: Version, project_id: int, full_path: str) -> str:
    """Where a release-``rel`` GitLab puts a new project's repository on its storage."""
    digest = hashlib.sha256(str(project_id).encode()).hexdigest()
    return text(STORAGE_PATH, rel, full_path=full_path, h1=digest[:2], h2=digest[2:4],
                digest=digest)


def git_http_denied(rel: Version) -> str:
    """The 401 body git over HTTP gets for missing or wrong credentials (text/plain)."""
    return text(GIT_HTTP_DENIED, rel) + "\n"


def git_http_not_smart(rel: Version) -> str:
    """The 403 body for info/refs without git-upload-pack/git-receive-pack (text/plain)."""
    return text(GIT_HTTP_NOT_SMART, rel)


def workhorse_not_smart(rel: Version) -> tuple[int, str]:
    """Workhorse's status and text/plain body (Go's http.Error adds the newline)."""
    status, _, body = text(WORKHORSE_NOT_SMART, rel).partition(" ")
    return int(status), body + "\n"


VISIBILITIES = ("private", "internal", "public")  # Gitlab::VisibilityLevel.string_values


def project_params_invalid(rel: Version, name_or_path: bool, visibility: str | None
                           ) -> dict[str, str] | None:
    """POST /projects' parameter check as Grape runs it: every failed validator, in the
    order they are declared (name/path first), joined with ", " under "error"."""
    failed = []
    if not name_or_path:
        failed.append(text(API_NAME_PATH_MISSING, rel))
    if visibility is not None and visibility not in VISIBILITIES:
        failed.append(text(API_VISIBILITY_INVALID, rel))
    return {"error": ", ".join(failed)} if failed else None


def project_default_branch(root_ref: str) -> str | None:
    """The project entity's default_branch (the PROJECT_DEFAULT_BRANCH row, every release):
    ``root_ref`` is Gitaly's FindDefaultBranchName answer without refs/heads/, "" for a
    repository with no branch yet."""
    return root_ref or None


def creation_model_message(rel: Version) -> str:
    return text(PROJECT_CREATE_FAILED, rel)


@dataclass(frozen=True)
class ApiFailure:
    """An API answer plus the log lines GitLab writes for it: JSON records, and plain text
    lines (production.log, application.log), each under gitlab-rails/."""

    status: int
    body: dict[str, Any]
    logs: tuple[tuple[str, dict[str, Any]], ...]  # (log file under gitlab-rails/, record)
    lines: tuple[tuple[str, str], ...] = ()  # (log file under gitlab-rails/, line)

    def body_text(self) -> str:
        return rails_json(self.body)


def rails_json(data: Any) -> str:
    """JSON as Rails renders it (no spaces, non-ASCII kept)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def unable_to_save(rel: Version, error: str, now: float | None = None
                   ) -> tuple[tuple[tuple[str, dict[str, Any]], ...], tuple[tuple[str, str], ...]]:
    """The create service's "Unable to save project" line on release ``rel`` (the
    PROJECT_CREATE_LOG rows): JSON records and plain lines, each with its file. Rails' own
    logger writes the bare message; AppTextLogger puts Time#to_s(:long) before it."""
    message = f"Unable to save project. Error: {error}"
    files = text(PROJECT_CREATE_LOG, rel).split(", ")
    records = tuple((f, {"severity": "ERROR", "message": message})
                    for f in files if f.endswith("_json.log"))
    clock = time.gmtime(time.time() if now is None else now)
    lines = tuple((f, message if f == "production.log"
                   else f"{time.strftime('%B %d, %Y %H:%M', clock)}: {message}")
                  for f in files if not f.endswith("_json.log"))
    return records, lines


def project_exists_check_failed(code: int, details: str, debug: str = "",
                                rel: Version = UNBOUNDED) -> ApiFailure:
    """POST /projects on release ``rel`` when RepositoryExists (the after_create check) fails."""
    message = grpc_ruby_message(code, details, debug, rel)
    return ApiFailure(400, {"message": {"base": [message]}}, *unable_to_save(rel, message))


def project_already_on_disk(rel: Version = UNBOUNDED) -> ApiFailure:
    return ApiFailure(400, {"message": {"base": [ALREADY_ON_DISK]}},
                      *unable_to_save(rel, ALREADY_ON_DISK))


def project_create_repository_failed(rel: Version, code: int, details: str,
                                     debug: str = "") -> ApiFailure:
    """POST /projects when CreateRepository fails after RepositoryExists answered."""
    message = grpc_ruby_message(code, details, debug, rel)
    exception = {"severity": "ERROR",
                 "exception.class": _WRAPPED.get(code, "Gitlab::Git::CommandError"),
                 "exception.message": message,
                 "exception.cause_class": GRPC_CLASSES.get(code, "GRPC::BadStatus")}
    records, lines = unable_to_save(rel, FAILED_TO_CREATE)
    return ApiFailure(400, {"message": {"base": [creation_model_message(rel), FAILED_TO_CREATE]}},
                      (("exceptions_json.log", exception), *records), lines)


# -- Workhorse: GET info/refs when the InfoRefs call fails -------------------------------
#
# gitlab-workhorse internal/git/info-refs.go up to v8.53.0 (GitLab 13.6) answers every
# failure with helper.Fail500 ("Internal server error", 500) and logs
# "handleGetInfoRefs: GetInfoRefsHandler: <grpc error>"; later Workhorse (workhorse/ in
# gitlab-org/gitlab) answers Unavailable with 503 and the text below (test
# TestGetInfoRefsHandler) and logs "handleGetInfoRefs: <grpc error>". The text is the
# one Rails shows from 14.4 (gitlab!71120, "Improve Git HTTP err message given when
# Gitaly unavailable"); the sim takes 14.4 as the Workhorse boundary too.
# helper.LogError/printError (labkit log, JSON in Omnibus): level=error msg=error, with
# method and uri; Go prints a status error as "rpc error: code = <Code> desc = <desc>".

INTERNAL_SERVER_ERROR_TEXT = "Internal server error"
#: Go's codes.Code String() names, by number.
GO_CODE_NAMES = {
    0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded",
    5: "NotFound", 6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted",
    9: "FailedPrecondition", 10: "Aborted", 11: "OutOfRange", 12: "Unimplemented",
    13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
}


def go_grpc_error(code: int, details: str) -> str:
    """A gRPC error as grpc-go prints it."""
    return f"rpc error: code = {GO_CODE_NAMES.get(code, f'Code({code})')} desc = {details}"


@dataclass(frozen=True)
class HttpFailure:
    status: int
    body: str  # text/plain, as Go's http.Error writes it (with the trailing newline)
    log: dict[str, Any]  # the Workhorse log record


def workhorse_info_refs_failed(rel: Version, code: int, details: str, method: str,
                               uri: str) -> HttpFailure:
    """Workhorse's answer and log record when InfoRefs fails with gRPC ``code``."""
    status, _, body = era(WORKHORSE_UNAVAILABLE, rel).text.partition(" ")
    newer = status == "503"
    prefix = "handleGetInfoRefs: " if newer else "handleGetInfoRefs: GetInfoRefsHandler: "
    log = {"error": prefix + go_grpc_error(code, details), "level": "error",
           "method": method, "msg": "error", "uri": uri}
    if newer and code == 14:
        return HttpFailure(503, body + "\n", log)
    return HttpFailure(500, INTERNAL_SERVER_ERROR_TEXT + "\n", log)


# -- Gitaly: a storage whose folder does not exist --------------------------------------
#
# Gitaly validates every storage when it starts and exits when a path is missing (it
# creates none; Omnibus' reconfigure does, see lab.omnibus.directories). The texts by
# release are the GITALY_STORAGE_MISSING rows above.

GITALY_CONFIG_TOML = "/var/opt/gitlab/gitaly/config.toml"


def gitaly_api_client_error(rel: Version, url: str, secret_error: str) -> str:
    """Why a release-``rel`` Gitaly (a source node: its config.toml) stops at start over its
    GitLab API client, or '' (before GITALY_GITLAB_SECTION nothing is checked at start:
    those rows' text is empty).
    ``secret_error``: Go's error reading the secret file ('' when it was read)."""
    if not url.startswith(("http://", "https://", "http+unix://")):
        return text(GITALY_API_URL_BAD, rel, url=url)
    if secret_error:
        return text(GITALY_API_SECRET_UNREADABLE, rel, error=secret_error)
    return ""


def gitaly_storage_missing(rel: Version, name: str, path: str,
                           config_path: str = GITALY_CONFIG_TOML) -> str:
    """The line a release-``rel`` Gitaly prints before exiting on a missing storage path."""
    return text(GITALY_STORAGE_MISSING, rel, name=name, path=path, config=config_path)
