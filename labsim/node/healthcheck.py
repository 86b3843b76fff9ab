"""gitlab-healthcheck: GET the app's /-/health from inside the node (exit 0 only on 200)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from labsim.common import simconfig


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gitlab-healthcheck")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--max-time", type=float, default=10)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(argv)
    try:
        app = simconfig.read_runtime().get("app")
    except (OSError, ValueError):
        app = None
    if not app:
        print("gitlab-healthcheck: no app on this node")
        return 1
    url = f"http://localhost:{app['port']}/-/health"
    try:
        with urllib.request.urlopen(url, timeout=args.max_time) as resp:
            print(resp.read().decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"gitlab-healthcheck: {url}: HTTP {exc.code}")
        return 22 if args.fail else 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"gitlab-healthcheck: {url}: {exc}")
        return 7


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
