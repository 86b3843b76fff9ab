"""The sim flavour's programs: an offline stand-in for a GitLab node, run inside the sim image.

Not GitLab, and it never says it is. Its rooms follow a node's roles:

- ``labsim.node``: the node itself: PID 1 (supervisor: the wrapper and reconfigure),
  ``gitlab-ctl``, ``gitlab-rake``, the health check;
- ``labsim.web``: the app node: health endpoints, the REST slice, Git over HTTP
  (Workhorse's part) and the internal API; the Ruby behind ``gitlab-rails runner``;
- ``labsim.gitaly``: the Gitaly node: the gRPC server, its git services and repository
  moves, its hooks, and the client the app node talks to it with;
- ``labsim.common``: what every role reads: gitlab.rb and gitlab-secrets.json as the
  node's release means them, logging.

Besides the standard library it imports what the image's Debian packages hold (grpc,
protobuf, jwt) and, of the toolkit, only ``lab.omnibus`` and ``lab.gitalypb``, which
the image carries beside it (the import contracts in pyproject.toml hold all three
to that; ``lab.engine.images`` builds the image from them).
"""
