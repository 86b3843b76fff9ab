"""GitLab releases: the release type and its one parser, the releases the project has
reference data for, and every release at which something the toolkit models changed.

Standard library only: the sim image carries this module (see lab/engine/images.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Releases whose template and attribute lists the key data in data/ comes from
# (scripts/omnibus_keys.py); the newest is the default.
REFERENCE_RELEASES = ("11.11.8", "12.10.14", "13.12.15", "15.9.8", "15.11.13", "16.11.10",
                      "17.11.7", "19.3.0")
DEFAULT_VERSION = REFERENCE_RELEASES[-1]
# The Gitaly guide was written for 11.x; nothing older is modelled.
OLDEST_SUPPORTED = "11.11.0"

# Real Omnibus knows its own release; the sim node learns it from this variable,
# which the lab's compose file sets (lab/render/compose_file.py).
VERSION_ENV = "GITLAB_TESTLAB_VERSION"

# The one release pattern: X.Y[.Z] and what follows. ASCII digits only: \d also matches
# other scripts' digits ("١٧.١١.٧"), which int() reads.
_RELEASE_RE = re.compile(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(.*)\Z", re.DOTALL)


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """A release a user or a file names: exactly X.Y.Z, else ValueError."""
        m = _RELEASE_RE.match(str(text).strip())
        if not m or m[3] is None or m[4]:
            raise ValueError(
                f"{text!r} is not a GitLab version of the form X.Y.Z (e.g. {DEFAULT_VERSION})")
        return cls(int(m[1]), int(m[2]), int(m[3]))

    @classmethod
    def told(cls, text: str | None) -> Version:
        """The release a node was told it runs: ``"15.4.2"`` (or ``"15.4"``, ``"15.4.2-ee"``);
        UNBOUNDED (the newest behaviour) when unknown. Lenient, unlike ``parse``, which
        judges a user's input."""
        m = _RELEASE_RE.match((text or "").lstrip())
        if not m:
            return UNBOUNDED
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def series(self) -> str:
        """"13.0" for 13.0.14: how Omnibus' own messages name a release."""
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= Version.parse(text)


#: A sentinel, not a release: newer than any. It is the open top of a range of releases
#: (a key removed "in UNBOUNDED" is not removed yet) and the release a node that was not
#: told its own behaves as (the newest behaviour the toolkit models). Never rendered or
#: shown as a version: the newest real release is DEFAULT_VERSION.
UNBOUNDED = Version(999, 0, 0)
#: Older than any release: the open bottom of a range of releases.
FIRST = Version(0, 0, 0)


def newer_than_known(version: Version) -> bool:
    """True for a minor release after the newest one the toolkit knows (patches of it pass).

    Its keys are unknown here: rendering for it would guess, and a typo such as
    99.0.0 would boot as if it were real.
    """
    newest = Version.parse(DEFAULT_VERSION)
    return (version.major, version.minor) > (newest.major, newest.minor)


# --- The releases at which something the toolkit models changed -----------------------
#
# One place for every release threshold: lab.omnibus.dialect, keypaths, keys, eras and
# infer compare against these names, and prose elsewhere names them instead of repeating
# the number. Each names its source (omnibus-gitlab unless said otherwise); docs/fidelity.md
# lists them too.

#: Bundled Gitaly is told its storages by the guide of 11.x/12.x as gitaly['storage'] (each
#: path naming the repositories folder); from 13.0 the guide uses git_data_dirs.
GUIDE_GIT_DATA_DIRS = Version(13, 0, 0)
#: gitlab_monitor renamed gitlab_exporter (package/libraries/config/gitlab.rb attribute(...)).
GITLAB_EXPORTER_NAMED = Version(12, 3, 0)
#: Puma the default web server; gitlab_monitor gone (attribute('gitlab_monitor') "legacy,
#: remove in 13.0").
PUMA_DEFAULT = Version(13, 0, 0)
GITLAB_MONITOR_REMOVED = Version(13, 0, 0)
#: attribute('gitlab_kas').
KAS_ADDED = Version(13, 5, 0)
#: unicorn['enable'] removed (deprecations.rb; its deprecation before that changes nothing
#: the lab models); the initial root password file written by reconfigure from 14.0.
UNICORN_REMOVED = Version(14, 0, 0)
INITIAL_ROOT_PASSWORD = Version(14, 0, 0)
#: gitaly['configuration'] (gitaly/libraries/gitaly.rb, remap_legacy_values).
GITALY_CONFIGURATION = Version(15, 10, 0)
#: The legacy gitaly[...] keys removed (package/libraries/deprecations.rb,
#: gitaly_legacy_configuration_deprecations); bundled Grafana disabled by default.
GITALY_LEGACY_REMOVED = Version(16, 0, 0)
GRAFANA_DISABLED = Version(16, 0, 0)
#: attribute('grafana') gone.
GRAFANA_REMOVED = Version(17, 1, 0)
#: gitaly['gitlab_secret'] and gitlab-secrets.json's gitaly section (gitaly/libraries/
#: gitaly.rb parse_secrets); ci_jwt_signing_key no longer generated.
GITALY_SECRET = Version(17, 5, 0)
#: roles(['gitaly_role']) (package/libraries/config/gitlab.rb: role('gitaly')).
GITALY_ROLE = Version(17, 6, 0)
#: gitlab_rails['repositories_storages']; the active_record_encryption_* secrets; storage
#: folders made from Gitaly's storage list, not only git_data_dirs (lab/omnibus/directories.py).
REPOSITORIES_STORAGES = Version(17, 8, 0)
DIRS_FROM_GITALY_STORAGES = Version(17, 8, 0)
ACTIVE_RECORD_ENCRYPTION = Version(17, 8, 0)
#: git_data_dirs removed: setting it aborts reconfigure (deprecations.rb).
GIT_DATA_DIRS_REMOVED = Version(18, 0, 0)

# Praefect (Gitaly Cluster): files/gitlab-cookbooks/praefect/ at each tag.
#: The first praefect cookbook (attributes/default.rb: virtual_storage_name, storage_nodes
#: with a static primary, no database).
PRAEFECT_COOKBOOK = Version(12, 4, 0)
#: praefect['virtual_storages'] and praefect['database_*'] (attributes/default.rb 12.6.8).
PRAEFECT_VIRTUAL_STORAGES = Version(12, 6, 0)
#: praefect['auto_migrate'] (attributes/default.rb 13.0.14).
PRAEFECT_AUTO_MIGRATE = Version(13, 0, 0)
#: praefect['tls_listen_addr'], ['certificate_path'], ['key_path'] (attributes 13.2.10).
PRAEFECT_TLS = Version(13, 2, 0)
#: The first release whose defaults run the database-backed cluster with automatic
#: failover (attributes 13.3.9: failover_enabled true, failover_election_strategy 'sql';
#: Gitaly v13.1.0 keeps the replication queue in PostgreSQL unless memory_queue_enabled).
PRAEFECT_CLUSTER = Version(13, 3, 0)
#: A virtual storage's nodes under 'nodes' beside 'default_replication_factor'
#: (templates/default/praefect-config.toml.erb 13.9.7).
PRAEFECT_REPLICATION_FACTOR = Version(13, 9, 0)
#: praefect['configuration'] (libraries/praefect.rb remap_legacy_values, 15.9.8).
PRAEFECT_CONFIGURATION = Version(15, 9, 0)
#: The legacy praefect[...] keys removed (deprecations.rb,
#: praefect_legacy_configuration_deprecations, 16.0.0).
PRAEFECT_LEGACY_REMOVED = Version(16, 0, 0)
#: Praefect routes per repository by default (Gitaly v14.0.0 internal/praefect/config/
#: config.go: ElectionStrategyPerRepository). Before, Omnibus' 'sql' strategy routes with
#: the node manager: one primary per virtual storage, and a repository the database does
#: not know goes to it (v13.3.0 internal/praefect/nodes/manager.go GetSyncedNode).
PRAEFECT_PER_REPOSITORY = Version(14, 0, 0)
#: Praefect answers RepositoryExists from its database, "repository exists: <error>" with
#: the database down (Gitaly internal/praefect/repository_exists.go, new at v13.9.0, gitaly
#: !3075 "intercept RepositoryExists calls in Praefect": "GitLab calls RepositoryExists
#: prior to creating a repository"); server.go installs it only under the per_repository
#: election strategy (v13.9.0..v16.7.0), so in Omnibus' default setup from
#: PRAEFECT_PER_REPOSITORY.
PRAEFECT_EXISTS_FROM_DB = PRAEFECT_PER_REPOSITORY
#: New repositories get @cluster/repositories/... replica paths (Gitaly internal/praefect/
#: praefectutil/replica_path.go, v15.0.0).
PRAEFECT_REPLICA_PATHS = Version(15, 0, 0)
# Praefect's subcommands (Gitaly cmd/praefect/subcmd*.go, from v15.11.0 internal/cli/
# praefect/). A release without one answers `praefect: unknown subcommand: "<name>"`, exit 1
# (subcmd.go subCommand, v12.10.0..v16.0.0).
#: `praefect accept-dataloss` (subcmd_accept_dataloss.go, new at v13.3.0; not in v13.2.x).
PRAEFECT_ACCEPT_DATALOSS = Version(13, 3, 0)
#: accept-dataloss sets the storage's generation to the repository's next one and schedules
#: no replication itself (the reconciler does): service/info/server.go SetAuthoritativeStorage
#: calls RepositoryStore.SetAuthoritativeReplica from v14.2.0; before, IncrementGeneration
#: plus an "update" replication job per other storage.
PRAEFECT_AUTHORITATIVE_REPLICA = Version(14, 2, 0)
#: `praefect check` with the checks "praefect migrations" and "gitaly node connectivity &
#: disk access" (subcmd_check.go, internal/praefect/checks.go, new at v14.5.0; not in
#: v14.4.x); the node pings go to log.Default (stderr, date and time first).
PRAEFECT_CHECK = Version(14, 5, 0)
#: check's -q flag, "Checking <name> - <description> [<severity>]" headings, the pings on
#: stdout, and the "database read/write" check (v14.6.0).
PRAEFECT_CHECK_VERBOSE = Version(14, 6, 0)
#: The "unavailable repositories" check, a warning (checks.go NewUnavailableReposCheck,
#: registered in subcmd.go from v14.7.0).
PRAEFECT_CHECK_UNAVAILABLE = Version(14, 7, 0)
#: The "clock synchronization" check, fatal (checks.go NewClockSyncCheck, v14.8.0).
PRAEFECT_CHECK_CLOCK = Version(14, 8, 0)
#: The clock check's NTP error ends " (NTP_HOST was not set)" when it was not
#: (internal/praefect/service/checks.go, v15.5.0).
PRAEFECT_CHECK_NTP_HINT = Version(15, 5, 0)
#: `praefect list-storages` (subcmd_list_storages.go, new at v15.1.0; not in v15.0.x).
PRAEFECT_LIST_STORAGES = Version(15, 1, 0)
#: Praefect's CLI on urfave/cli (internal/cli/praefect/main.go, cmd/praefect/main.go
#: `log.Fatal(err)`, v16.0.0): a failing subcommand's error gets log's date and time, but
#: for errors wrapped in cli.Exit (printed as they are). Before, subCommand printed the
#: error alone.
PRAEFECT_CLI_TOOLKIT = Version(16, 0, 0)
#: accept-dataloss on a repository Praefect does not know: "repository does not exist on
#: virtual storage" (the names as error metadata, service/info/server.go v16.1.0); before,
#: `repository "<path>" does not exist on virtual storage "<vs>"`.
PRAEFECT_NOT_FOUND_METADATA = Version(16, 1, 0)
#: The image's healthcheck passes a node that serves no web (a Gitaly-only node): before,
#: it marked one unhealthy (omnibus-gitlab files/gitlab-cookbooks/gitlab/libraries/helpers/
#: gitlab_healthcheck_helper.rb, new at 19.1.0+ce.0: "the bash entrypoint exits 0 on other
#: roles").
HEALTHCHECK_ROLE_AWARE = Version(19, 1, 0)

# Behaviour and texts (lab.omnibus.eras tells each source in full beside its text).
#: Workhorse answers an unavailable Gitaly with 503 and Rails' text (gitlab!71120).
WORKHORSE_503 = Version(14, 4, 0)
#: Gitaly's Go pre-receive hook on by default (gitaly internal/metadata/featureflag/
#: feature_flags.go go_prereceive_hook OnByDefault v13.2.0; an off flag in v13.1.0); before,
#: the Ruby hooks of gitlab-shell ran (Gitaly's ruby/gitlab-shell, v1.42.0-v13.1.0).
GO_HOOKS = Version(13, 2, 0)
#: Gitlab::Shell no longer creates repositories (gitlab-org/gitlab c861a0a0).
CREATE_WITHOUT_SHELL = Version(13, 0, 0)
#: Gitaly's hooks send the Gitlab-Shell-Api-Request JWT (gitaly v15.2 pins gitlab-shell
#: v14.8.0), then stop sending Gitlab-Shared-Secret (gitaly!4947, v15.6.0).
GITALY_SENDS_JWT = Version(15, 2, 0)
GITALY_DROPS_SHARED_SECRET = Version(15, 6, 0)
#: Rails' internal API verifies the JWT by default (gitlab!100929).
RAILS_VERIFIES_JWT = Version(15, 5, 0)
#: The gitlab-rails recipe notifies Gitaly when gitlab_shell_secret changes (omnibus-gitlab
#: files/gitlab-cookbooks/gitlab/recipes/gitlab-rails.rb, gitlab_shell_secret_services;
#: absent at 16.7.0): before, a reconfigure left Gitaly on the old secret until it restarted.
GITALY_RESTARTS_ON_SHELL_SECRET = Version(16, 8, 0)
#: Gitaly's refusal of a missing storage path: wrapped with os.Stat's error from v13.0,
#: "doesn't exist" from v14.3, printed plain (cli.Exit) from v16.3 (gitaly
#: internal/config/config.go, internal/cli/gitaly/serve.go).
GITALY_STORAGE_WRAPPED = Version(13, 0, 0)
GITALY_STORAGE_DOESNT_EXIST = Version(14, 3, 0)
GITALY_PLAIN_EXIT = Version(16, 3, 0)
#: Hashed storage is the default for a new installation's projects (application_settings.
#: hashed_storage_enabled defaults to true: gitlab-ce!29586, EE port gitlab-ee!14129; the
#: docs' repository_storage_types.md history says 12.0); a lab is always a new installation.
HASHED_STORAGE_DEFAULT = Version(12, 0, 0)
#: CE's projects API takes ``repository_storage`` (POST /projects, PUT /projects/:id): before,
#: only EE declared it (ee/lib/ee/api/helpers/projects_helpers.rb optional_project_params_ee)
#: and Grape dropped it on CE; gitlab-org/gitlab!18721, CHANGELOG.md 12.9.0 "Added".
CE_API_REPOSITORY_STORAGE = Version(12, 9, 0)

#: Projects::CreateService#fail logs "Unable to save project. Error: ..." with
#: Gitlab::AppLogger (application.log, and application_json.log since 12.7: gitlab!22379
#: MultiDestinationLogger) instead of Rails.logger (production.log: the 11.x and 12.x files,
#: "# rubocop:disable Gitlab/RailsLogger"). 13.0.6 still writes production.log (gitlab-org/
#: gitlab#235125); the first release with AppLogger is not pinned: the sim takes 13.1, the
#: earliest it can be; a later 13.x file (Service.create_from_active_default_integrations
#: with with_templates: true, group-level integrations) already has AppLogger.
CREATE_LOGS_TO_APP_LOGGER = Version(13, 1, 0)
#: Gitlab::AppLogger drops application.log: UNSTRUCTURED_RAILS_LOG off by default
#: (gitlab!111046), removed in 15.11 (gitlab!112910; lib/gitlab/app_logger.rb loggers
#: [Gitlab::AppJsonLogger]); gitlab-org/gitlab#409310: "disabled by default in 15.10".
UNSTRUCTURED_LOGS_OFF = Version(15, 10, 0)

#: Gitaly stops accepting v1 tokens (the shared secret, base64): gitaly auth/token.go
#: CheckToken knows "v1" up to v12.9.x; v12.10.0 drops it (commit 54465275b, "Drop support
#: for Gitaly v1 authentication"), so a token of fewer than three dot-separated parts is
#: "authentication required".
GITALY_DROPS_V1_TOKENS = Version(12, 10, 0)
#: grpc-ruby appends C core's debug_error_string to a failed call's message (GRPC::BadStatus,
#: src/ruby/lib/grpc/errors.rb; grpc/grpc#22876, grpc 1.30): before, the message is only
#: "<code>:<details>" (gitlab-foss#58703, 11.8.1: "Unable to save project. Error: 4:Deadline
#: Exceeded"). GitLab's first grpc >= 1.30: the gitlabhq Gemfile of 13.3 pins ~> 1.30.2 (with
#: gitaly 13.3.0-rc1); Gitaly's lock-step ruby/Gemfile.lock has 1.24.0 at v13.1.0 and v13.2.0
#: and 1.30.2 from v13.3.0 (724abcc47, 2020-08-04). Rails' own 13.2 Gemfile was not read.
GRPC_DEBUG_IN_MESSAGE = Version(13, 3, 0)
#: Rails' grpc gem names the reason of a failed connection in the call's message
#: ("failed to connect to all addresses; last error: ...") and prints debug_error_string
#: in absl's form: GitLab's first grpc after 1.42 is 1.55 (gitlab-org/gitlab!121899,
#: commit 7ad293af "Update grpc to v1.55.0": Gemfile ~> 1.42.0 -> ~> 1.55.0; its message
#: names grpc/grpc#29869, "Enable GRPC_ERROR_IS_ABSEIL_STATUS", as what changed the debug
#: string). It came after 16.0.0 was cut: it pins google-protobuf >= 3.23.1, and the
#: Omnibus work to build grpc >= 1.48 (omnibus-gitlab!6908, 5a7c6080a/51c941111, merged
#: 2023-05-25) is first in 16.1.0+ce.0, while 16.0.0+ce.0's VERSION is of 2023-05-18. The
#: MR's own milestone was not read: 16.1 is the first release it can be in.
GRPC_REASON_IN_MESSAGE = Version(16, 1, 0)

# A Gitaly node installed from source: its config.toml's schema (gitaly config.toml.example
# and internal/config/config.go by tag; docs/fidelity.md, "Nodes installed from source").
#: [gitlab-shell] gains secret_file and gitlab_url (v13.0.0); before, Gitaly read them from
#: gitlab-shell's own config.yml in [gitlab-shell] dir (secret: dir/.gitlab_shell_secret).
GITALY_SHELL_KEYS_IN_TOML = Version(13, 0, 0)
#: [gitlab] url/secret_file and [hooks] custom_hooks_dir replace them (v13.1.0); from then
#: Gitaly builds its GitLab API client when it starts (cmd/gitaly/main.go NewGitlabAPI), so a
#: bad URL or an unreadable secret file stops it there.
GITALY_GITLAB_SECTION = Version(13, 1, 0)
#: Gitaly builds that client with gitlab-shell's NewHTTPClientWithOpts (an error for a URL
#: that is not http(s):// or http+unix://) instead of NewHTTPClient (nil): v13.6.0
#: internal/gitaly/hook/access.go (v13.5.0 still NewHTTPClient).
GITALY_API_CLIENT_OPTS = Version(13, 6, 0)
#: The [gitaly-ruby] sidecar's section is gone from the example (v15.11.0).
GITALY_RUBY_REMOVED = Version(15, 11, 0)
#: The [gitlab-shell] section is gone from the example (v16.4.0).
GITALY_SHELL_DIR_REMOVED = Version(16, 4, 0)
#: A source app node's gitlab.yml: each repositories.storages entry carries a `path` until
#: Omnibus stops writing one there (17.8.0+ce.0 files/gitlab-cookbooks/gitaly/libraries/
#: gitaly.rb: "The path shouldn't be set in git_data_dirs or repository_storages, since
#: Rails shouldn't care about it"; 17.7.0 still merges 'path' into every entry). Before,
#: Rails' StorageSettings raised "Storage is invalid because it has no `path` key".
GITLAB_YML_STORAGE_PATH_DROPPED = Version(17, 8, 0)


def omnibus_image_ref(edition: str, version: str) -> str:
    """The official image of a release: gitlab/gitlab-ce:17.11.7-ce.0."""
    return f"gitlab/gitlab-{edition}:{version}-{edition}.0"


def cng_gitaly_image_ref(version: str) -> str:
    """Cloud Native GitLab's Gitaly image of a release, without a registry host (tagged
    vX.Y.Z in CNG's pipelines): gitlab-org/build/cng/gitaly:v17.11.7. Pulled from GitLab's
    own container registry and tagged with this name by the user (README)."""
    return f"gitlab-org/build/cng/gitaly:v{version}"


def reference_for(version: Version) -> str:
    """The newest reference release not newer than ``version`` (the oldest one below it)."""
    older = [r for r in REFERENCE_RELEASES if Version.parse(r) <= version]
    return older[-1] if older else REFERENCE_RELEASES[0]
